"""What every AAR Lab server shares: settings, identity, SQLite, errors, HTTP hosting."""
