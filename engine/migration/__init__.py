"""Pure migration logic: fuzzy matching, duplicate detection, data quality and phase criteria.

Nothing here touches a database or the network; ``storage.migration_plans`` feeds it records.
"""
