"""NHS FHIR routes: GP Connect Access Record Structured (STU3) and the Summary Care Record (R4)."""
