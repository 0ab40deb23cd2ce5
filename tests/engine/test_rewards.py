"""Rule rewards, and a tiny reward model built here and loaded like a hub id."""

import pytest
import torch

from engine.project.problems import LLMLabError
from engine.rewards import Reward, RewardModel, build_rule, extract_number


def test_extract_number_handles_gsm8k_and_sentences():
    assert extract_number("She has 3 apples, so 3 + 4 = 7.\n#### 1,234") == 1234
    assert extract_number("The answer is 12.") == 12
    assert extract_number("The answer is -3.5") == -3.5
    assert extract_number("no digits") is None


@pytest.mark.parametrize(
    "response, answer, expected",
    [
        ("The answer is 12.", "12", 1.0),
        ("The answer is 13.", "12", 0.0),
        ("it is blue", "Blue", 0.0),
        ("Blue.", "blue", 1.0),
    ],
)
def test_exact_match(response, answer, expected):
    assert build_rule("exact_match")(response, answer) == expected


def test_regex_length_and_weights_combine():
    reward = Reward(
        [
            build_rule({"name": "regex", "pattern": r"^The answer is", "weight": 0.5}),
            build_rule({"name": "length", "target": 4}),
        ]
    )
    scores = reward(["p", "p"], ["The answer is 7.", "seven"], [None, None])
    assert torch.allclose(scores, torch.tensor([0.5 + 1.0, 0.0 + 0.25]))


def test_bad_rules_name_the_field():
    with pytest.raises(LLMLabError, match="unknown rule 'shout'.*exact_match, regex, length"):
        build_rule("shout")
    with pytest.raises(LLMLabError, match="regex.pattern: not a valid regular expression"):
        build_rule({"name": "regex", "pattern": "("})
    with pytest.raises(LLMLabError, match="needs a reward_model, reward_rules, or both"):
        Reward([])
    with pytest.raises(LLMLabError, match="reference-answer column"):
        build_rule("exact_match")("7", None)


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory):
    """A randomly initialised DeBERTa-v2 classifier with a WordPiece tokenizer, saved like a hub repo."""
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertTokenizerFast, DebertaV2Config, DebertaV2ForSequenceClassification

    path = tmp_path_factory.mktemp("reward-model")
    raw = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    raw.normalizer = normalizers.BertNormalizer(lowercase=True)
    raw.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    raw.train_from_iterator(
        ["what is two plus two", "the answer is four", "hello there friend"] * 3,
        trainers.WordPieceTrainer(vocab_size=120, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]),
    )
    raw.post_processor = processors.BertProcessing(
        ("[SEP]", raw.token_to_id("[SEP]")), ("[CLS]", raw.token_to_id("[CLS]"))
    )
    tokenizer = BertTokenizerFast(
        tokenizer_object=raw, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]"
    )
    tokenizer.save_pretrained(path)
    config = DebertaV2Config(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=1,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(0)
    DebertaV2ForSequenceClassification(config).save_pretrained(path)
    return path


def test_reward_model_loads_by_path_like_a_hub_id_and_scores_pairs(tiny_reward_model):
    model = RewardModel(tiny_reward_model.name, tiny_reward_model.parent, torch.device("cpu"), batch_size=2)
    assert not model.model.training
    prompts = ["what is two plus two", "hello", "what is two plus two"]
    responses = ["the answer is four", "there friend", "the answer is four"]
    scores = model.score(prompts, responses)
    assert scores.shape == (3,) and torch.isfinite(scores).all()
    assert scores[0] == pytest.approx(scores[2].item(), abs=1e-5)  # batching does not change a score
    assert scores[0] != pytest.approx(scores[1].item())
    paired = model.tokenizer(prompts[0], responses[0])["input_ids"]
    assert paired.count(model.tokenizer.sep_token_id) == 2  # given to the model as a text pair
    combined = Reward([build_rule("exact_match")], model)(prompts, responses, ["The answer is four.", "x", "five"])
    assert torch.allclose(combined, scores + torch.tensor([1.0, 0.0, 0.0]))


def test_a_causal_lm_or_an_offline_hub_id_as_reward_model_is_one_line(tmp_path, monkeypatch):
    from engine.factory import build_model
    from engine.project import load_project
    from engine.tokenizer import byte_tokenizer
    from tests.tiny_project import make_project

    root = make_project(tmp_path / "p")
    tokenizer = byte_tokenizer()
    build_model(load_project(root), tokenizer).save_pretrained(root / "lm")
    tokenizer.save_pretrained(root / "lm")
    with pytest.raises(LLMLabError) as error:
        RewardModel("lm", root, torch.device("cpu"))
    assert error.value.lines == [
        "reward_model: cannot load 'lm': it is not a sequence-classification model "
        "(a causal LM cannot score (prompt, response) pairs)"
    ]
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # no network in tests
    with pytest.raises(LLMLabError, match=r"^reward_model: cannot load 'nobody/no-such-reward-model': ") as error:
        RewardModel("nobody/no-such-reward-model", root, torch.device("cpu"))
    assert len(error.value.lines) == 1
