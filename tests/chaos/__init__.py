"""The chaos suite: several servers on one PostgreSQL database, a faulty CRM, kills, and a reckoning."""
