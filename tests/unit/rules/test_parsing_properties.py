"""Property tests: the parsers never raise, on any text, and account for what they drop."""

from hypothesis import given, settings
from hypothesis import strategies as st

from selfinstruct.rules.filters import instance_reject_reason, instruction_reject_reason
from selfinstruct.rules.parsing import (
    parse_classification_instances,
    parse_generation_instances,
    split_instructions,
)

# Text built from the pieces the parsers look for, so the adversarial cases are common.
PIECES = st.sampled_from([
    "Example 1", "Example", "Example 2.", "Input:", "Input 2 :", "Output:", "Output 3:",
    "Class label:", "\n", "\n\n", "\n10. ", "\n1 . ", "9.", ":", " ", "Task:", "é", "\x00",
    "yes", "No", "- ", "\t", "word", "Sentence:", "\r\n", "\u2028",
])
ADVERSARIAL = st.lists(st.one_of(PIECES, st.text(max_size=12)), max_size=40).map("".join)
ANY_TEXT = st.one_of(st.text(max_size=400), ADVERSARIAL)


INSTRUCTION_REASONS = {None, "too_short", "too_long", "blacklisted", "write_a_program",
                       "punctuation", "non_ascii"}
INSTANCE_REASONS = {None, "input_equals_output", "empty_output", "ends_with_colon"}


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT)
def test_split_instructions_never_raises_and_cleans(text):
    for piece in split_instructions(text):
        assert piece and piece == piece.strip()
        assert "  " not in piece
        reason = instruction_reject_reason(piece)
        assert reason in INSTRUCTION_REASONS
        words = len(piece.split())
        if reason is None:  # a kept instruction is within the paper's length bounds
            assert 3 < words <= 150


@settings(max_examples=300, deadline=None)
@given(ANY_TEXT, st.booleans())
def test_instance_parsers_never_raise_and_account_for_drops(text, truncated):
    for parse in (parse_generation_instances, parse_classification_instances):
        parsed = parse(text, truncated)
        # every input either yields instances or is rejected with a reason
        assert parsed.instances or parsed.dropped
        for instance in parsed.instances:
            assert isinstance(instance.input, str) and isinstance(instance.output, str)
            reason = instance_reject_reason(instance)
            assert reason in INSTANCE_REASONS
            if reason is None:  # what the paper's rules keep
                assert instance.output != "" and instance.input != instance.output
        for _, reason in parsed.dropped:
            assert reason in {"truncated", "unparseable"}
