"""CRM adapters: one small module per CRM on the shared base in base.py, listed in registry.py."""
