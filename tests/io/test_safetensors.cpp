// safetensors: loading the reference package's files exactly, zero-copy mapping, conversion,
// sharded indexes, byte-identical saving, and refusal of malformed headers.
#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"

namespace lmf::io::test {
namespace {

const nlohmann::json& goldens() {
  static const nlohmann::json g = read_json_file(fixture("io_goldens.json"));
  return g;
}

DType expected_dtype(const std::string& stored) {
  if (stored == "F32" || stored == "F64") return DType::f32;
  if (stored == "F16") return DType::f16;
  if (stored == "BF16") return DType::bf16;
  if (stored == "I64") return DType::i64;
  if (stored == "I32" || stored == "I16") return DType::i32;
  if (stored == "I8") return DType::i8;
  if (stored == "U8") return DType::u8;
  return DType::boolean;
}

// Checks every tensor of `sd` against golden set `set` exactly (f64 goldens rounded to f32).
void expect_matches(const StateDict& sd, const std::string& set, bool all_f32 = false) {
  const auto& g = goldens()[set];
  ASSERT_EQ(sd.size(), g.size()) << set;
  for (const auto& [name, want] : g.items()) {
    SCOPED_TRACE(set + "/" + name);
    auto it = sd.find(name);
    ASSERT_NE(it, sd.end());
    const Tensor& t = it->second;
    const std::string stored = want["dtype"];
    const bool floating = stored[0] == 'F' || stored == "BF16";
    EXPECT_EQ(t.dtype(), all_f32 && floating ? DType::f32 : expected_dtype(stored));
    EXPECT_EQ(t.shape(), want["shape"].get<Shape>());
    const auto got = values(t);
    const auto exp = want["values"].get<std::vector<double>>();
    ASSERT_EQ(got.size(), exp.size());
    for (size_t i = 0; i < got.size(); ++i) {
      const double e = stored == "F64" ? static_cast<double>(static_cast<float>(exp[i])) : exp[i];
      ASSERT_EQ(got[i], e) << "element " << i;
    }
  }
}

TEST(IoSafetensors, LoadsEveryDtypeExactlyWithoutConversion) {
  expect_matches(load_safetensors(fixture("dtypes.safetensors"), std::nullopt), "dtypes");
}

TEST(IoSafetensors, DefaultConvertsFloatingTensorsToF32) {
  expect_matches(load_safetensors(fixture("dtypes.safetensors")), "dtypes", /*all_f32=*/true);
}

TEST(IoSafetensors, ConvertsToBf16WithRoundToNearestEven) {
  auto sd = load_safetensors(fixture("dtypes.safetensors"), DType::bf16);
  const Tensor& f32 = sd.at("f32");
  EXPECT_EQ(f32.dtype(), DType::bf16);
  const auto exp = goldens()["dtypes"]["f32"]["values"].get<std::vector<double>>();
  const auto got = values(f32);
  for (size_t i = 0; i < exp.size(); ++i)
    EXPECT_EQ(got[i], bf16_to_f32(f32_to_bf16(static_cast<float>(exp[i]))));
  EXPECT_EQ(sd.at("i64").dtype(), DType::i64);  // integers are never converted
  EXPECT_THROW(load_safetensors(fixture("dtypes.safetensors"), DType::i32), ValueError);
}

TEST(IoSafetensors, F32TensorsAreCopyOnWriteViewsOfOneMapping) {
  const std::string path = fixture("tied.safetensors");
  const size_t file_size = std::filesystem::file_size(path);
  auto sd = load_safetensors(path);
  Tensor a = sd.at("embed.weight");
  const Tensor& b = sd.at("proj.weight");
  EXPECT_EQ(a.storage().get(), b.storage().get());
  EXPECT_EQ(a.storage()->nbytes(), file_size);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(a.data_ptr()) % 4, 0u);
  const double before = values(a)[0];
  a.fill_(42.0);  // private mapping: the file must not change
  EXPECT_EQ(values(load_safetensors(path).at("embed.weight"))[0], before);
}

TEST(IoSafetensors, TiedSafetensorsMatchesTorchValues) {
  expect_matches(load_safetensors(fixture("tied.safetensors"), std::nullopt), "tied");
}

TEST(IoSafetensors, HeaderOnlyReportsNamesDtypesAndOffsets) {
  const auto infos = read_safetensors_header(fixture("dtypes.safetensors"));
  ASSERT_EQ(infos.size(), goldens()["dtypes"].size());
  for (const auto& i : infos) {
    const auto& want = goldens()["dtypes"][i.name];
    EXPECT_EQ(i.stored_dtype, want["dtype"].get<std::string>());
    EXPECT_EQ(i.shape, want["shape"].get<Shape>());
    EXPECT_EQ(i.dtype, expected_dtype(i.stored_dtype));
    EXPECT_LE(i.begin, i.end);
  }
  const auto bytes = read_bytes(fixture("dtypes.safetensors"));
  const auto h = parse_safetensors(u8(bytes), bytes.size());
  EXPECT_EQ(h.metadata.at("format"), "pt");
  EXPECT_EQ(h.data_start % 8, 0u);
}

TEST(IoSafetensors, ShardedIndexLoadsListedTensorsFromEachShard) {
  const auto sd = load_sharded_index(fixture("sharded/model.safetensors.index.json"));
  EXPECT_EQ(sd.count("extra.not_listed"), 0u);
  auto exact = load_sharded_index(fixture("sharded/model.safetensors.index.json"), std::nullopt);
  expect_matches(exact, "sharded");
  expect_matches(load_checkpoint_dir(fixture("sharded"), std::nullopt), "sharded");
}

TEST(IoSafetensors, ShardedIndexErrorsNameTheShard) {
  TempDir dir;
  const std::string shard = "model-00001-of-00002.safetensors";
  std::filesystem::copy_file(fixture("sharded/" + shard), dir / shard);
  auto expect_error = [&](const std::string& index, const std::string& needle) {
    write_bytes(dir / "model.safetensors.index.json", index);
    try {
      load_sharded_index(dir / "model.safetensors.index.json");
      ADD_FAILURE() << "no error for " << index;
    } catch (const IoError& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  expect_error(R"({"weight_map": {"layer.0.bias": "missing.safetensors"}})", "does not exist");
  expect_error(R"({"weight_map": {"nope": ")" + shard + R"("}})", "has no such tensor");
  expect_error(R"({"weight_map": {"x": "../x.safetensors"}})", "inside the index's folder");
  expect_error(R"({"weight_map": {"x": "/etc/passwd"}})", "inside the index's folder");
  expect_error(R"({"weights": {}})", "weight_map");
  expect_error("{\"weight_map\": \n {,}", "model.safetensors.index.json:2:3");
}

// Tensors built from the golden values, independent of our reader.
StateDict save_ref_tensors() {
  StateDict sd;
  for (const auto& [name, g] : goldens()["save_ref"].items()) {
    const std::string st = g["dtype"];
    const auto v = g["values"].get<std::vector<double>>();
    Tensor t = Tensor::from_vector(std::vector<float>(v.begin(), v.end()), g["shape"].get<Shape>());
    sd[name] = t.to(expected_dtype(st));
  }
  return sd;
}

TEST(IoSafetensors, SavedBytesAreIdenticalToThePythonPackage) {
  const std::string ref = read_bytes(fixture("save_ref.safetensors"));
  EXPECT_EQ(serialize_safetensors(save_ref_tensors()), ref);
  EXPECT_EQ(serialize_safetensors(load_safetensors(fixture("save_ref.safetensors"), std::nullopt)),
            ref);
}

TEST(IoSafetensors, SaveIsAtomicAndRoundTripsViewsAndMetadata) {
  TempDir dir;
  Tensor base = Tensor::from_vector(std::vector<float>{1, 2, 3, 4, 5, 6}, {2, 3});
  StateDict sd{{"t", base.transpose(0, 1)}, {"n", base.narrow(1, 1, 2)},
               {"e", Tensor::zeros({0, 3})}, {"ids", Tensor::arange(4)}};
  save_safetensors(dir / "m.safetensors", sd, {{"format", "pt"}, {"note", "a\nb\"c"}});
  EXPECT_FALSE(std::filesystem::exists(dir / "m.safetensors.tmp"));
  const auto back = load_safetensors(dir / "m.safetensors", std::nullopt);
  ASSERT_EQ(back.size(), sd.size());
  for (const auto& [k, t] : sd) {
    EXPECT_EQ(back.at(k).shape(), t.shape()) << k;
    EXPECT_EQ(values(back.at(k)), values(t)) << k;
  }
  const auto bytes = read_bytes(dir / "m.safetensors");
  EXPECT_EQ(parse_safetensors(u8(bytes), bytes.size()).metadata.at("note"), "a\nb\"c");
  EXPECT_THROW(save_safetensors(dir / "no/such/dir/x.safetensors", sd), IoError);
}

// A safetensors file from a header string and a data section.
std::string st_file(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

void expect_io_error(const std::string& bytes, const std::string& needle) {
  SCOPED_TRACE(needle);
  try {
    parse_safetensors_header(u8(bytes), bytes.size());
    load_safetensors_buffer(u8(bytes), bytes.size());
    ADD_FAILURE() << "no IoError";
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
}

TEST(IoSafetensors, MalformedHeadersAreIoErrorsWithUsefulMessages) {
  const std::string d8(8, '\0');
  expect_io_error("abc", "too short");
  expect_io_error(st_file("{}", "").substr(0, 7), "too short");
  std::string huge = st_file("{}", "");
  huge[3] = 1;
  expect_io_error(huge, "header says it is");
  expect_io_error(st_file("{\"a\": ", ""), "not valid JSON");
  expect_io_error(st_file("[1, 2]", ""), "not an object");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", "1234"),
                  "ends at byte 8 of the data section");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                          R"("b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8),
                  "overlap");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", d8),
                  "needs 3 x 4 bytes");
  expect_io_error(st_file(R"({"a":{"dtype":"F8_E4M3","shape":[8],"data_offsets":[0,8]}})", d8),
                  "F8_E4M3");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                          R"("a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", d8),
                  "appears twice");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}})", d8),
                  "non-negative");
  expect_io_error(st_file(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", d8),
                  "end before they begin");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[1]}})", d8), "no 'data_offsets'");
  expect_io_error(st_file(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296,4294967296],)"
                          R"("data_offsets":[0,8]}})", d8),
                  "too many elements");
  expect_io_error(st_file(R"({"__metadata__":{"a":1}})", ""), "must be a string");
  expect_io_error(st_file(R"({"b":{"dtype":"BOOL","shape":[2],"data_offsets":[0,2]}})", "\x01\x02"),
                  "0x02");
  const std::string real = read_bytes(fixture("dtypes.safetensors"));
  expect_io_error(real.substr(0, real.size() - 3), "truncated file");
  expect_io_error(real.substr(0, 100), "header says it is");
}

TEST(IoSafetensors, UnalignedTensorsAreCopiedAndGapsAccepted) {
  // Header of 13 bytes: data starts at byte 21, so the f32 at data offset 1 is unaligned.
  std::string h = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  float v[2] = {1.5f, -2.25f};
  std::string data(1, '\0');
  data.append(reinterpret_cast<const char*>(v), 8);
  const std::string bytes = st_file(h, data);
  ASSERT_NE((8 + h.size() + 1) % 4, 0u);
  const auto sd = load_safetensors_buffer(u8(bytes), bytes.size());
  EXPECT_EQ(values(sd.at("a")), (std::vector<double>{1.5, -2.25}));
}

TEST(IoSafetensors, MissingFilesAreIoErrors) {
  EXPECT_THROW(load_safetensors(fixture("nope.safetensors")), IoError);
  EXPECT_THROW(load_safetensors(fixture("")), IoError);  // a folder
}

TEST(IoJson, ParseErrorsNameFileLineAndColumn) {
  TempDir dir;
  write_bytes(dir / "c.json", "{\n  \"a\": 1,\n  \"b\": ]\n}");
  try {
    read_json_file(dir / "c.json");
    ADD_FAILURE();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("c.json:3:8:"), std::string::npos) << e.what();
  }
  EXPECT_THROW(read_json_file(dir / "missing.json"), IoError);
  write_bytes(dir / "ok.json", R"({"hidden_size": 32})");
  EXPECT_EQ(read_json_file(dir / "ok.json")["hidden_size"], 32);
}

}  // namespace
}  // namespace lmf::io::test
