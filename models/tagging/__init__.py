"""Token classification (named entities on tweets, part-of-speech tags): data, model, training, metrics,
baseline, decoding and ``tfxformers train tagger`` / ``tfxformers tag``."""
