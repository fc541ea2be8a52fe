"""The feedback loop end to end (issue #23's scenario), through the platform's own commands.

    generate  TRAIN_DAYS + BEFORE unshifted days, then AFTER days where `cancel_order` (not in
              the taxonomy, arriving unlabeled) is 10% of the traffic and `password_reset` is
              reworded
    ingest    every day (intentflow ingest --path)
    train     the champion on the first TRAIN_DAYS (intentflow train --end-date, from the lake)
    serve     intentflow serve (INTENTFLOW_SERVE_REPLAY on, so replayed days keep their dates)
    replay    the BEFORE + AFTER days after those through the served champion (intentflow
              replay: the prediction log): traffic it never trained on, as in production
    monitor   every replayed day (intentflow monitor --json): alerts on unshifted days are
              false alarms
    correct   simulated agents correct CORRECTIONS predictions of the new intent through
              POST /v1/models/intent/feedback (their true label from the replay's key files)
    retrain   intentflow train on the shifted window (the corrections join its snapshot)
    score     champion and retrained version on a fresh held-back shifted day, never replayed
              (intentflow evaluate): the new intent's recall, every old intent's F1

Prints a table and writes the figures as JSON. Everything lives under --work (lake, registry,
the key files: the key files are outside the lake on purpose, agents in a real deployment know
the labels). Days end yesterday, so the service's feedback lookup window holds them.

    INTENTFLOW_SHARED=/work/shared python bench/feedback_loop.py --work /tmp/intentflow-feedback-loop
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's ml, not an installed one
TOKEN = "feedback-loop-bench-token-0123456789"  # noqa: S105 (a local, throwaway service)
NEW_INTENT = "cancel_order"
# Environment that would point the commands elsewhere than --work.
KEPT_ENV = ("INTENTFLOW_SHARED", "INTENTFLOW_PROGRESS")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = _parse(argv)
    work = Path(args.work).absolute()
    if args.fresh and work.exists():
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    env = _env(work, args)
    train_days = args.before if args.train_days is None else args.train_days
    start = date.today() - timedelta(days=train_days + args.before + args.after)
    first = start + timedelta(days=train_days)  # the first replayed day
    shift_day = first + timedelta(days=args.before)
    days = [first + timedelta(days=i) for i in range(args.before + args.after)]
    drops, heldout = work / "drops", work / "heldout"
    clock = Clock()
    results: dict[str, Any] = {"params": vars(args), "first_day": first.isoformat()}
    results["shift_day"] = shift_day.isoformat()

    with clock("generate"):
        shift = ["--shift-from", shift_day.isoformat(), "--seed", str(args.seed)]
        _cli(env, "generate", "--out", drops, "--days", train_days + len(days),
             "--per-day", args.per_day, "--start", start.isoformat(), *shift)  # fmt: skip
        # A fresh shifted day, never ingested or replayed: the held-back test.
        _cli(env, "generate", "--out", heldout, "--days", 1, "--per-day", args.heldout,
             "--start", date.today().isoformat(), *shift[:2], "--seed", str(args.seed + 1))  # fmt: skip
    with clock("ingest"):
        for i in range(train_days + len(days)):
            _cli(env, "ingest", "--date", (start + timedelta(days=i)).isoformat(), "--path", drops)
    tuning = _tuning(args)
    with clock("train champion"):
        v1 = _cli_json(env, "train", "--end-date", (first - timedelta(days=1)).isoformat(),
                       "--window-days", train_days, *tuning)  # fmt: skip
    results["champion"] = {"version": v1["version"], "alias": v1["alias"], "test": _brief(v1)}
    server = Server(work, env)
    try:
        with clock("serve (start)"):
            server.start()
        with clock("replay"):
            replayed = _cli_json(env, "replay", "--drops", drops, "--day", first.isoformat(),
                                 "--days", len(days), "--url", server.url, "--keys",
                                 work / "keys")  # fmt: skip
            sent = sum(d["sent"] for d in replayed["days"])
            server.wait_logged(sent)
        results["replay"] = replayed["days"]
        with clock("monitor"):
            monitored = [
                _cli_json(env, "monitor", "--model", "intent", "--day", day.isoformat())
                for day in days
            ]
        results["monitoring"] = [
            _monitor_row(m, day >= shift_day) for m, day in zip(monitored, days, strict=True)
        ]
        with clock("corrections"):
            results["feedback"] = _correct(server, work / "keys", args.corrections)
    finally:
        server.stop()
    with clock("retrain"):
        v2 = _cli_json(env, "train", "--end-date", days[-1].isoformat(),
                       "--window-days", args.after, *tuning)  # fmt: skip
    results["retrain"] = {
        "version": v2["version"],
        "alias": v2["alias"],
        "promoted": v2["alias"] == "champion",
        "reasons": v2["reasons"],
        "test": _brief(v2),
        "snapshot_corrections": _snapshot_corrections(env, v2),
    }
    with clock("score held-back day"):
        data = _heldout_file(heldout, work / "heldout.jsonl")
        old = _cli_json(env, "evaluate", "--model", f"intent:{v1['version']}", "--data", data)
        new = _cli_json(env, "evaluate", "--model", f"intent:{v2['version']}", "--data", data)
    results["heldout"] = _compare(old, new, _policy(env))
    results["seconds"] = clock.spent
    _summarise(results)
    out = Path(args.results) if args.results else work / "results.json"
    out.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"\nresults: {out}")
    return results


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    default = Path(tempfile.gettempdir()) / "intentflow-feedback-loop"
    p.add_argument("--work", default=str(default), help="working folder (replaced)")
    p.add_argument("--per-day", type=int, default=300, help="conversations a day")
    p.add_argument("--before", type=int, default=7, help="unshifted days replayed")
    p.add_argument(
        "--train-days", type=int, default=None, help="the champion's days (default: --before)"
    )
    p.add_argument("--after", type=int, default=7, help="shifted days")
    p.add_argument("--heldout", type=int, default=1000, help="held-back day's conversations")
    p.add_argument("--corrections", type=int, default=50, help="agents' corrections")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--base-model", default=None, help="default: the packaged MiniLM-L6")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=None)
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--results", default=None, help="results JSON (default WORK/results.json)")
    p.add_argument("--keep", dest="fresh", action="store_false", help="keep WORK's contents")
    return p.parse_args(argv)


def _tuning(args: argparse.Namespace) -> list[Any]:
    given = {
        "--base-model": args.base_model,
        "--epochs": args.epochs,
        "--learning-rate": args.learning_rate,
        "--batch-size": args.batch_size,
        "--max-length": args.max_length,
    }
    return [x for k, v in given.items() if v is not None for x in (k, v)]


# --- running the commands ---------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.spent: dict[str, float] = {}

    def __call__(self, step: str) -> Clock:
        self._step = step
        return self

    def __enter__(self) -> None:
        self._t = time.perf_counter()
        print(f"-- {self._step}", flush=True)

    def __exit__(self, *exc: object) -> None:
        self.spent[self._step] = round(time.perf_counter() - self._t, 1)


def _env(work: Path, args: argparse.Namespace) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("INTENTFLOW_") or k in KEPT_ENV}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_INTENTFLOW")}
    return {
        **env,
        "PYTHONPATH": str(REPO),
        "HF_HUB_OFFLINE": "1",
        "INTENTFLOW_HOME": str(work / "home"),
        "INTENTFLOW_PROGRESS": "off",
        "INTENTFLOW_SERVE_TOKENS": TOKEN,
        "INTENTFLOW_TOKEN": TOKEN,
        "INTENTFLOW_SERVE_REPLAY": "1",  # replayed days keep their dates in the log
        "INTENTFLOW_SERVE_MODELS": "intent",
        "INTENTFLOW_SERVE_POLL_S": "1",
        "INTENTFLOW_SERVE_LOG_FLUSH_S": "1",
        "INTENTFLOW_FEEDBACK_NEW_LABELS": "1",  # agents may name the new intent
    }


def _cli(env: dict[str, str], *args: Any) -> str:
    cmd = [sys.executable, "-m", "ml.cli", *map(str, args)]
    done = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True)  # noqa: S603
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[2:5])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout


def _cli_json(env: dict[str, str], *args: Any) -> Any:
    return json.loads(_cli(env, *args, "--json"))


class Server:
    """`intentflow serve` on a free port, stopped with SIGTERM (its log flushes on the way)."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.work, self.env = work, env
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300) -> None:
        log = (self.work / "serve.log").open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [sys.executable, "-m", "ml.cli", "serve", "--port", str(self.port)],
            env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"intentflow serve exited; see {self.work / 'serve.log'}")
            try:
                with urllib.request.urlopen(f"{self.url}/ready", timeout=5) as r:  # noqa: S310
                    if json.loads(r.read())["status"] == "ready":
                        return
            except OSError:
                pass
            time.sleep(0.5)
        raise SystemExit("intentflow serve never became ready")

    def wait_logged(self, rows: int, timeout: float = 120) -> None:
        """Until the prediction log holds `rows` rows (it flushes every second)."""
        from deltalake import DeltaTable

        table = _predictions(self.env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            try:
                if (
                    DeltaTable(str(table)).to_pyarrow_table(columns=["prediction_id"]).num_rows
                    >= rows
                ):
                    return
            except Exception:  # noqa: BLE001, S110 (not written yet)
                pass
            time.sleep(1)
        raise SystemExit(f"the prediction log never reached {rows} rows")

    def post(self, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        request = urllib.request.Request(  # noqa: S310
            f"{self.url}{path}",
            data=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=60) as r:  # noqa: S310
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"{}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _predictions(env: dict[str, str]) -> Path:
    """The predictions table's folder, as the settings place it."""
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", "from ml.config import settings; print(settings().predictions)"],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return Path(out.stdout.strip())


# --- the scenario's pieces ----------------------------------------------------------------------


def _monitor_row(m: dict[str, Any], shifted: bool) -> dict[str, Any]:
    return {
        "day": m["day"],
        "shifted": shifted,
        "status": m["status"],
        "predictions": m.get("predictions"),
        "drifted": [c["name"] for c in m.get("checks", []) if c.get("drift")],
        "checks": {c["name"]: c.get("value") for c in m.get("checks", [])},
        "thresholds": {c["name"]: c.get("threshold") for c in m.get("checks", [])},
    }


def _correct(server: Server, keys: Path, n: int) -> dict[str, Any]:
    """Agents correct the first `n` replayed predictions whose true label is the new intent,
    one POST each, five agents in turn."""
    from ml.serving.replay import read_keys

    rows = [r for r in read_keys(keys) if r["label"] == NEW_INTENT]
    chosen = rows[:n]
    answers: dict[int, int] = {}
    for i, row in enumerate(chosen):
        status, _ = server.post(
            "/v1/models/intent/feedback",
            {"prediction_id": row["prediction_id"], "label": NEW_INTENT,
             "agent_id": f"agent-{i % 5 + 1}", "note": None},
        )  # fmt: skip
        answers[status] = answers.get(status, 0) + 1
    (keys.parent / "corrected.json").write_text(
        json.dumps([r["prediction_id"] for r in chosen]), encoding="utf-8"
    )
    return {
        "available": len(rows),
        "sent": len(chosen),
        "statuses": answers,
        "predicted_as": _count(r["predicted"] for r in chosen),
    }


def _count(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _snapshot_corrections(env: dict[str, str], trained: dict[str, Any]) -> Any:
    """The retrain snapshot's feedback record (lineage), read from its snapshot folder."""
    code = (
        "import json,sys; from ml.registry.store import Registry; from ml.config import settings; "
        f"v = Registry(settings().registry_url).get('intent', version={int(trained['version'])}); "
        "print(json.dumps(v.lineage, default=str))"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True
    )
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1:]}
    lineage = json.loads(out.stdout)
    path = lineage.get("snapshot_path")
    info = Path(str(path)) / "snapshot.json" if path else None
    if info and info.is_file():
        record = json.loads(info.read_text())
        return {
            "counts": record.get("counts"),
            "feedback": record.get("feedback"),
        }
    return {"snapshot_path": path}


def _heldout_file(drops: Path, out: Path) -> Path:
    """The held-back day as a labeled JSONL file (text, label): its true labels."""
    from ml.serving.replay import day_messages
    from ml.taxonomy import known_intents

    (day,) = [date.fromisoformat(p.name) for p in drops.iterdir() if p.name[0].isdigit()]
    messages, _ = day_messages(drops, day, known_intents())
    out.write_text(
        "".join(json.dumps({"text": m.text, "label": m.label}) + "\n" for m in messages),
        encoding="utf-8",
    )
    return out


def _policy(env: dict[str, str]) -> tuple[float, int]:
    """The promotion policy's largest per-class F1 drop and the fewest examples it judges."""
    code = (
        "from ml.config import settings; s = settings(); "
        "print(s.promotion_max_class_regression, s.promotion_min_class_support)"
    )
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], env=env, cwd=REPO, capture_output=True, text=True, check=True
    )
    allowed, support = out.stdout.split()
    return float(allowed), int(support)


def _drop(c: dict[str, Any]) -> float:
    return (c["f1_before"] or 0) - (c["f1_after"] or 0)


def _compare(old: dict[str, Any], new: dict[str, Any], policy: tuple[float, int]) -> dict[str, Any]:
    """The held-back day before and after; old intents judged as the promotion policy judges
    a test split: those with at least its fewest examples, by their F1 drop."""
    allowed, min_support = policy
    before, after = old.get("per_class", {}), new.get("per_class", {})
    classes = []
    for label in sorted(set(before) | set(after)):
        b, a = before.get(label, {}), after.get(label, {})
        classes.append({
            "label": label,
            "support": a.get("support", b.get("support")),
            "f1_before": b.get("f1"),
            "f1_after": a.get("f1"),
            "recall_before": b.get("recall"),
            "recall_after": a.get("recall"),
        })  # fmt: skip
    old_classes = [c for c in classes if c["label"] != NEW_INTENT and c["f1_before"] is not None]
    judged = [c for c in old_classes if (c["support"] or 0) >= min_support]
    worst = max(judged or old_classes, key=_drop)
    unjudged = max(old_classes, key=_drop)
    new_row = next((c for c in classes if c["label"] == NEW_INTENT), {})
    return {
        "n": new.get("n"),
        "accuracy_before": old.get("accuracy"),
        "accuracy_after": new.get("accuracy"),
        "macro_f1_before": old.get("macro_f1"),
        "macro_f1_after": new.get("macro_f1"),
        "new_intent_recall": new_row.get("recall_after"),
        "new_intent_support": new_row.get("support"),
        "worst_old_class": worst["label"],
        "worst_old_class_support": worst["support"],
        "worst_old_class_f1_drop": round(_drop(worst), 4),
        "worst_unjudged_class": unjudged["label"],
        "worst_unjudged_class_support": unjudged["support"],
        "worst_unjudged_class_f1_drop": round(_drop(unjudged), 4),
        "max_class_regression_allowed": allowed,
        "min_class_support": min_support,
        "old_classes_within_policy": _drop(worst) <= allowed + 1e-9,
        "per_class": classes,
    }


def _brief(trained: dict[str, Any]) -> dict[str, Any]:
    test = trained.get("test") or {}
    return {k: test.get(k) for k in ("n", "accuracy", "macro_f1")}


def _summarise(r: dict[str, Any]) -> None:
    mon = r["monitoring"]
    false_alarms = sum(m["status"] == "drift" for m in mon if not m["shifted"])
    flagged = sum(m["status"] == "drift" for m in mon if m["shifted"])
    r["summary"] = {
        "false_alarms_unshifted": false_alarms,
        "unshifted_days": sum(not m["shifted"] for m in mon),
        "flagged_shifted": flagged,
        "shifted_days": sum(m["shifted"] for m in mon),
        "promoted": r["retrain"]["promoted"],
        "new_intent_recall_heldout": r["heldout"]["new_intent_recall"],
        "old_classes_within_policy": r["heldout"]["old_classes_within_policy"],
    }
    print("\nday         shifted  predictions  status    drifted checks")
    for m in mon:
        print(f"{m['day']}  {'yes' if m['shifted'] else 'no ':<7}  {m['predictions'] or 0:>11}  "
              f"{m['status']:<8}  {', '.join(m['drifted']) or '-'}")  # fmt: skip
    s, h = r["summary"], r["heldout"]
    print(
        f"\nfalse alarms on unshifted days  {s['false_alarms_unshifted']} / {s['unshifted_days']}"
    )
    print(f"shifted days flagged            {s['flagged_shifted']} / {s['shifted_days']}")
    print(
        f"corrections sent                {r['feedback']['sent']} (HTTP {r['feedback']['statuses']})"
    )
    print(f"retrain v{r['retrain']['version']}                      "
          f"{'promoted' if s['promoted'] else 'not promoted'}")  # fmt: skip
    for reason in r["retrain"]["reasons"]:
        print(f"  {reason}")
    print(f"held-back day ({h['n']} messages): accuracy {h['accuracy_before']} -> "
          f"{h['accuracy_after']}, macro-F1 {h['macro_f1_before']} -> {h['macro_f1_after']}")  # fmt: skip
    print(f"  {NEW_INTENT} recall {h['new_intent_recall']} on {h['new_intent_support']} held-back")
    print(f"  worst old class with {h['min_class_support']}+ examples {h['worst_old_class']} "
          f"({h['worst_old_class_support']}): F1 drop {h['worst_old_class_f1_drop']} "
          f"(policy allows {h['max_class_regression_allowed']}); of all old classes "
          f"{h['worst_unjudged_class']} ({h['worst_unjudged_class_support']}): "
          f"{h['worst_unjudged_class_f1_drop']}")  # fmt: skip
    print("seconds  " + "  ".join(f"{k} {v}" for k, v in r["seconds"].items()))
    print(f"finished {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
