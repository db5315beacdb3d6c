"""HL7 v2 lab results (Clinisys WinPath, Sunquest): ORU^R01 parsing into FHIR R4 Observations, ACKs, MLLP."""
