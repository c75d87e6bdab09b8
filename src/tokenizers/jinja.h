// Internal: values, syntax tree, parser and renderer of the Jinja2 subset behind ChatTemplate.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace lmf::tok::jinja {

struct Value;
using List = std::vector<Value>;
using Dict = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python dicts
struct CallArgs;
using Function = std::function<Value(CallArgs&)>;

// A Python/Jinja value. Lists and dicts are shared and never mutated once built (the sandbox is
// immutable); a namespace is the one mutable object (reference semantics).
struct Value {
  enum class Type : uint8_t {
    Undefined,
    None,
    Bool,
    Int,
    Float,
    String,
    List,
    Dict,
    Namespace,
    Function
  };
  Type type = Type::Undefined;
  bool b = false;
  bool tuple = false;  // a List that Python would print as a tuple
  bool lazy = false;   // a List standing for a Python generator (select, map, items, ...)
  uint16_t depth =
      0;  // nesting of lists/dicts inside (bounded, so destruction cannot overflow the stack)
  int64_t i = 0;
  double f = 0.0;
  std::string s;  // String text; for Undefined, the error to raise when it is used
  std::shared_ptr<List> list;
  std::shared_ptr<Dict> dict;  // Dict and Namespace
  std::shared_ptr<Function> fn;

  static Value undefined(std::string hint = {});
  static Value none();
  static Value boolean(bool v);
  static Value integer(int64_t v);
  static Value number(double v);
  static Value string(std::string v);
  static Value make_list(List v, bool is_tuple = false);
  static Value make_dict(Dict v);
  static Value function(Function f);

  bool is_undefined() const { return type == Type::Undefined; }
  bool is_none() const { return type == Type::None; }
  bool is_string() const { return type == Type::String; }
  bool is_list() const { return type == Type::List; }
  bool is_dict() const { return type == Type::Dict; }
  bool is_number() const { return type == Type::Int || type == Type::Float || type == Type::Bool; }
  const Value* find(const std::string& key) const;  // dict/namespace key, or nullptr
};

struct CallArgs {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
};

Value from_json(const nlohmann::ordered_json& j, int depth = 0);

// ---- syntax tree ----
struct Expr;
using ExprP = std::unique_ptr<Expr>;
enum class EK {
  Literal,
  Name,
  List,
  Tuple,
  Dict,
  GetAttr,
  GetItem,
  Slice,
  Call,
  Filter,
  Test,
  Neg,
  Pos,
  Not,
  And,
  Or,
  Binary,
  Compare,
  Cond,
  Concat
};
struct Expr {
  EK kind;
  int line = 0, col = 0;
  Value lit;                 // Literal
  std::string name;          // Name, GetAttr attribute, Filter/Test name, Binary/Compare op
  ExprP a, b, c;             // operands: object, index, slice parts, condition branches
  std::vector<ExprP> items;  // List/Tuple/Dict (key, value pairs flattened)/Call positional
  std::vector<std::pair<std::string, ExprP>> kwargs;  // Call/Filter/Test keyword arguments
  bool negated = false;                               // Test: `is not`
};

struct Node;
using NodeP = std::unique_ptr<Node>;
using Body = std::vector<NodeP>;
enum class NK { Text, Output, If, For, Set, SetBlock, Macro, Break, Continue, Generation };
struct Node {
  NK kind;
  int line = 0, col = 0;
  std::string text;                              // Text data; Macro name; Set attribute (ns.attr)
  ExprP expr;                                    // Output/Set value; For iterable
  std::vector<std::pair<ExprP, Body>> branches;  // If/elif (condition) and else (null)
  std::vector<std::string> targets;              // For/Set names (several = tuple unpacking)
  ExprP filter;                                  // For ... if filter
  Body body, else_body;                          // For body/else; SetBlock/Macro/Generation body
  std::vector<std::string> params;               // Macro parameters
  std::vector<ExprP> defaults;                   // Macro defaults, aligned to the last parameters
};

struct Program {
  Body body;
};

// Throws lmf::ValueError naming line and column.
std::shared_ptr<Program> parse(const std::string& source);
// `context` must be a Dict value. Throws lmf::ValueError / TemplateRaised.
std::string render(const Program& prog, const Value& context);

}  // namespace lmf::tok::jinja
