"""File exchange: CSV/XLSX imports and exports in each vendor's documented layout, all-or-nothing."""
