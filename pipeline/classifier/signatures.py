"""What the TFX pipeline's parts share: feature names, and the signature that takes serialized tf.Examples.

The Evaluator (TFMA) feeds a model serialized ``tf.Example`` protos, not token ids, so the Trainer's
``Format-Serving`` export, which the Evaluator loads, carries one more signature beside the standard ones
of ``serving/export/classifier.py``::

    serving_examples: examples string [batch] -> probabilities float32 [batch, labels], label_id int32 [batch]

It parses the ``text`` feature and tokenizes it in the graph: WordPiece families (BERT, DistilBERT,
ELECTRA) with tensorflow_text's ``FastBertTokenizer`` built from the model's own WordPiece vocabulary, with the same normalisation as the Hugging Face tokenizer
the trainer and the proxy use (lower case, NFD, accents stripped), the same ``[CLS] ... [SEP]`` framing
and the same truncation to ``max_length``; RoBERTa's byte-level BPE, which tensorflow_text lacks, with
``classifier.graph_bpe`` (the same rules in graph ops). ``tests/pipeline/classifier`` checks the ids against the Hugging Face
tokenizer on a whole test split. The pushed export (``Format-Push``, same weights) does not carry this
signature, so its graph needs no tensorflow_text ops and any server loads it (TF Serving links them; a
plain TensorFlow process would have to ``import tensorflow_text`` first).
"""
from __future__ import annotations

from tfxformers.errors import UserError

TEXT_KEY = "text"
LABEL_KEY = "label"
EXAMPLES_SIGNATURE = "serving_examples"
# CsvExampleGen split names: the pipeline's data directory has one sub-directory per split.
SPLITS = {"train": "train", "eval": "validation", "test": "test"}


def hf_tokenizer_settings(tokenizer) -> dict:
    """What the in-graph tokenizer must copy from a Hugging Face BERT tokenizer."""
    import json

    backend = json.loads(tokenizer.backend_tokenizer.to_str())
    normalizer = backend.get("normalizer") or {}
    lowercase = bool(normalizer.get("lowercase", getattr(tokenizer, "do_lower_case", True)))
    vocab = [token for token, _ in sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])]
    model = backend.get("model") or {}
    return {
        "vocab": vocab,
        "lower_case": lowercase,
        "unk_token": tokenizer.unk_token,
        "cls_id": tokenizer.cls_token_id,
        "sep_id": tokenizer.sep_token_id,
        "pad_id": int(tokenizer.pad_token_id or 0),
        "max_chars_per_word": int(model.get("max_input_chars_per_word", 100)),
        "suffix_indicator": model.get("continuing_subword_prefix", "##"),
    }


class InGraphTokenizer:
    """Texts -> (input_ids, attention_mask) int32 [batch, longest], inside a TensorFlow graph."""

    def __init__(self, tokenizer, max_length: int):
        import tensorflow as tf
        import tensorflow_text as tf_text

        settings = hf_tokenizer_settings(tokenizer)
        self.max_length = int(max_length)
        self.cls_id, self.sep_id, self.pad_id = settings["cls_id"], settings["sep_id"], settings["pad_id"]
        self._tf, self._tf_text = tf, tf_text
        self.lower_case = settings["lower_case"]
        # Normalisation happens in __call__, exactly as the Hugging Face BertNormalizer does it:
        # tensorflow_text's own lower-casing applies NFKC case folding, which rewrites characters such as
        # "½" or a non-breaking hyphen that the Hugging Face tokenizer keeps as they are.
        self._tokenizer = tf_text.FastBertTokenizer(
            vocab=settings["vocab"],
            suffix_indicator=settings["suffix_indicator"],
            max_bytes_per_word=settings["max_chars_per_word"],
            token_out_type=tf.int64,
            unknown_token=settings["unk_token"],
            no_pretokenization=False,
            support_detokenization=False,
            lower_case_nfd_strip_accents=False,
        )

    def normalize(self, texts):
        """Hugging Face's BertNormalizer: drop control characters, then (uncased vocabularies) NFD,
        strip combining accents, lower-case."""
        tf = self._tf
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\p{C}\x{fffd}]", "")
        if self.lower_case:
            texts = self._tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
            texts = tf.strings.lower(texts, encoding="utf-8")
        return texts

    def __call__(self, texts):
        tf = self._tf
        texts = self.normalize(texts)
        pieces = self._tokenizer.tokenize(texts)  # ragged [batch, (word pieces)]
        pieces = tf.cast(pieces[:, : self.max_length - 2], tf.int32)
        batch = tf.shape(pieces.row_lengths())[0]
        cls = tf.fill([batch, 1], tf.constant(self.cls_id, tf.int32))
        sep = tf.fill([batch, 1], tf.constant(self.sep_id, tf.int32))
        ids = tf.concat([cls, pieces, sep], axis=1)
        input_ids = ids.to_tensor(default_value=self.pad_id)
        attention_mask = tf.ones_like(ids).to_tensor(default_value=0)
        return input_ids, attention_mask


def in_graph_tokenizer(tokenizer, max_length: int, tokenizer_kind: str = "wordpiece"):
    """The in-graph tokenizer for a family's ``tokenizer_kind`` (the encoder registry's ``FamilySpec``):
    WordPiece (BERT, DistilBERT, ELECTRA) through tensorflow_text's FastBertTokenizer, byte-level BPE
    (RoBERTa), which tensorflow_text lacks, through ``classifier.graph_bpe``."""
    if tokenizer_kind == "byte_bpe":
        from tfxformers.pipeline.classifier.graph_bpe import ByteLevelBPETokenizer

        return ByteLevelBPETokenizer(tokenizer, max_length)
    if tokenizer_kind != "wordpiece":
        raise UserError(f"no in-graph tokenizer for tokenizer kind {tokenizer_kind!r}")
    return InGraphTokenizer(tokenizer, max_length)


def examples_signature_builder(tokenizer, max_length: int, tokenizer_kind: str = "wordpiece"):
    """For ``serving.export.trained.write_trained(extra_signatures=...)``: builds ``serving_examples`` on a model."""

    def build(keras_model) -> dict:
        import tensorflow as tf

        in_graph = in_graph_tokenizer(tokenizer, max_length, tokenizer_kind)
        feature_spec = {TEXT_KEY: tf.io.FixedLenFeature([], tf.string)}

        @tf.function(input_signature=[tf.TensorSpec((None,), tf.string, name="examples")], autograph=False)
        def serve_examples(examples):
            features = tf.io.parse_example(examples, feature_spec)
            input_ids, attention_mask = in_graph(features[TEXT_KEY])
            logits = keras_model({"input_ids": input_ids, "attention_mask": attention_mask}, training=False)
            return {"probabilities": tf.nn.softmax(logits, axis=-1),
                    "label_id": tf.argmax(logits, axis=-1, output_type=tf.int32)}

        return {EXAMPLES_SIGNATURE: serve_examples}

    return build
