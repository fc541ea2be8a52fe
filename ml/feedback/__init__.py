"""Agents' corrections of served predictions: the lake's `feedback` table (table), the checks
and writes every entry point shares (store), the service's group commit (writer), the lookup of
predictions (lookup), imports (importer), what a retrain uses (training), and the daily summary
the UI charts (summary). docs/feedback.md describes the whole."""
