"""Reading YAML safely: bytes to plain Python data, refusing what a configuration never needs.

`decode(raw)` checks the size (MAX_FILE_BYTES) and UTF-8 (a BOM is dropped); `load_yaml(text)`
uses PyYAML's SafeLoader but refuses, before anything is constructed: more than MAX_ALIASES
aliases, a document expanding to more than MAX_NODES values (an alias bomb), recursive aliases,
duplicate keys, control characters. Every refusal is a YamlError whose text names the line and
column and says what to do; the caller adds the file name.
"""
import yaml

MAX_FILE_BYTES = 1_000_000
MAX_ALIASES = 100
MAX_NODES = 100_000


class YamlError(Exception):
    """The file cannot be read as safe YAML; str() is the problem, without the file name."""


def _refuse(text):
    raise YamlError(text)


def decode(raw):
    if len(raw) > MAX_FILE_BYTES:
        _refuse("file is larger than %d bytes; a configuration file is a few kilobytes"
              % MAX_FILE_BYTES)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw.count(b"\n", 0, err.start) + 1
        _refuse("byte offset %d (line %d): byte 0x%02x is not valid UTF-8; save the file as UTF-8"
              % (err.start, line, raw[err.start]))
    return text[1:] if text.startswith("\ufeff") else text


class _Loader(yaml.SafeLoader):
    """SafeLoader that stops after MAX_ALIASES aliases, while the document is still composed."""

    def __init__(self, stream):
        super().__init__(stream)
        self.alias_count = 0

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            self.alias_count += 1
            if self.alias_count > MAX_ALIASES:
                mark = self.peek_event().start_mark
                _refuse("line %d column %d: more than %d YAML aliases (*name); refusing a possible "
                      "alias bomb, write the values out" % (mark.line + 1, mark.column + 1,
                                                            MAX_ALIASES))
        return super().compose_node(parent, index)


def load_yaml(text):
    try:
        loader = _Loader(text)          # the reader refuses control characters right here
    except yaml.reader.ReaderError as err:
        _refuse("line %d: character %r is not allowed in YAML (a control character or binary "
              "data); remove it" % (text.count("\n", 0, err.position) + 1, chr(err.character)
                                    if isinstance(err.character, int) else err.character))
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_nodes(node)
        return loader.construct_document(node)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        if mark is None:
            _refuse("invalid YAML: %s" % (err,))
        _refuse("line %d column %d: invalid YAML: %s; fix the syntax there"
              % (mark.line + 1, mark.column + 1, err.problem or err.context))
    except yaml.YAMLError as err:
        _refuse("invalid YAML: %s" % (err,))
    except RecursionError:
        _refuse("the YAML is nested too deeply; a configuration is a few levels deep")
    finally:
        loader.dispose()


def _check_nodes(root):
    """Refuse recursive aliases, duplicate keys and documents expanding past MAX_NODES nodes."""
    sizes, active = {}, set()

    def size(node):
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in active:
            _refuse("line %d: a YAML alias refers to itself; recursive values are not allowed"
                  % (node.start_mark.line + 1))
        active.add(id(node))
        children = node.value if isinstance(node, yaml.SequenceNode) else ()
        if isinstance(node, yaml.MappingNode):
            _check_duplicate_keys(node)
            children = [part for pair in node.value for part in pair]
        total = 1 + sum(size(child) for child in children)
        if total > MAX_NODES:
            _refuse("the YAML expands to more than %d values (aliases repeated too often?); "
                  "refusing a possible alias bomb" % MAX_NODES)
        active.discard(id(node))
        sizes[id(node)] = total
        return total

    size(root)


def _check_duplicate_keys(node):
    seen = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                _refuse("line %d column %d: duplicate key '%s'; keep one"
                      % (key.start_mark.line + 1, key.start_mark.column + 1, key.value))
            seen.add(key.value)
