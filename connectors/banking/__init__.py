"""UK Open Banking (OBIE Account and Transaction API): consent flow and bank provider profiles."""
