"""IntelMQ collector bots of intelmq-nsm."""
