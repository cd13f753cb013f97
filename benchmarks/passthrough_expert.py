"""The baseline for pipeline benchmarks: an expert that receives, sends and acknowledges.

Not a product bot (it lives here, not under intelmq_nsm/bots): the benchmark starts it as
``python benchmarks/passthrough_expert.py BOT_ID``.
"""

from intelmq.lib.bot import ExpertBot


class PassThroughExpertBot(ExpertBot):
    """Pass every event on unchanged"""

    def process(self):
        self.send_message(self.receive_message())
        self.acknowledge_message()


BOT = PassThroughExpertBot

if __name__ == "__main__":
    BOT.run()
