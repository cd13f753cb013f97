"""IntelMQ bots of intelmq-nsm, laid out as bots/<group>/<name>/<kind>.py for IntelMQ."""
