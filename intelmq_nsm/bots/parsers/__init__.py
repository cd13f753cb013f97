"""IntelMQ parser bots of intelmq-nsm."""
