"""IntelMQ expert bots of intelmq-nsm."""
