"""IntelMQ output bots of intelmq-nsm."""
