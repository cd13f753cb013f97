"""A small HTTP server stack shared by the services that intelmq-nsm bots run (the intake)."""
