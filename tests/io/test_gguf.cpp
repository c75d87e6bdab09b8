// GGUF: metadata of every value type and dequantization of every supported tensor type equal to
// gguf-py (bit-exact), the writer byte-identical to gguf-py's GGUFWriter, refusal of truncated and
// corrupt files, and the real SmolLM2 file when it is installed.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <random>

#include "io/gguf_test_util.h"
#include "io/io_test_util.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/gguf.h"
#include "lmforge/io/json.h"

namespace lmf::io::test {
namespace {

void expect_bit_equal(const Tensor& got, const Tensor& want, const std::string& name) {
  ASSERT_EQ(got.dtype(), DType::f32) << name;
  ASSERT_EQ(got.shape(), want.shape()) << name;
  const Tensor g = got.contiguous(), w = want.contiguous();
  const auto* a = static_cast<const uint32_t*>(g.data_ptr());
  const auto* b = static_cast<const uint32_t*>(w.data_ptr());
  int64_t bad = 0;
  for (int64_t k = 0; k < g.numel(); ++k)
    if (a[k] != b[k] && bad++ < 5)
      ADD_FAILURE() << name << "[" << k << "]: got bits " << std::hex << a[k] << " want " << b[k];
  EXPECT_EQ(bad, 0) << name;
}

TEST(GgufRead, MetadataOfEveryValueTypeMatchesGgufPy) {
  const GgufFile f = GgufFile::open(gguf_fixture("types.gguf"));
  const auto meta = read_json_file(gguf_fixture("types_meta.json"));
  EXPECT_EQ(f.version(), 3u);
  EXPECT_EQ(f.alignment(), 64u);
  EXPECT_EQ(f.data_offset() % 64, 0u);
  ASSERT_EQ(f.metadata().size(), meta.size());
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");  // file order kept
  EXPECT_EQ(f.metadata()[1].first, "test.u8");
  for (const auto& [key, jv] : meta.items()) {
    SCOPED_TRACE(key);
    const GgufValue& v = f.at(key);
    const auto& types = jv[0];
    const auto& want = jv[1];
    ASSERT_EQ(static_cast<uint32_t>(v.type), types[0].get<uint32_t>());
    if (v.type == GgufType::ARRAY) {
      ASSERT_EQ(static_cast<uint32_t>(v.elem), types[1].get<uint32_t>());
      ASSERT_EQ(v.array_size(), want.size());
      for (size_t i = 0; i < want.size(); ++i) {
        if (v.elem == GgufType::STRING)
          EXPECT_EQ(v.strings[i], want[i].get<std::string>());
        else if (v.elem == GgufType::BOOL)
          EXPECT_EQ(v.ints[i] != 0, want[i].get<bool>());
        else if (v.elem == GgufType::F32 || v.elem == GgufType::F64)
          EXPECT_EQ(v.floats[i], want[i].get<double>());
        else
          EXPECT_EQ(v.ints[i], want[i].get<int64_t>());
      }
    } else if (v.type == GgufType::STRING) {
      EXPECT_EQ(v.as_string(key), want.get<std::string>());
    } else if (v.type == GgufType::BOOL) {
      EXPECT_EQ(v.as_bool(key), want.get<bool>());
    } else if (v.is_float()) {
      EXPECT_EQ(v.as_float(key), want.get<double>());
    } else if (v.type == GgufType::U64) {
      EXPECT_EQ(v.u, want.get<uint64_t>());
    } else {
      EXPECT_EQ(v.as_int(key), want.get<int64_t>());
    }
  }
  // u64 above INT64_MAX is refused by as_int, naming the key; wrong types name both.
  EXPECT_THROW(f.at("test.u64").as_int("test.u64"), IoError);
  try {
    f.at("test.string").as_int("test.string");
    FAIL();
  } catch (const IoError& e) {
    EXPECT_NE(std::string(e.what()).find("test.string"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("STRING"), std::string::npos);
  }
  EXPECT_THROW(f.at("no.such.key"), IoError);
}

TEST(GgufRead, EveryTypeDequantizesBitExactlyAsGgufPy) {
  const GgufFile f = GgufFile::open(gguf_fixture("types.gguf"));
  const StateDict want = load_safetensors(gguf_fixture("types_expected.safetensors"), std::nullopt);
  size_t checked = 0;
  for (const auto& t : f.tensors()) {
    if (t.type == GgmlType::Q5_0) continue;
    ASSERT_TRUE(want.count(t.name)) << t.name;
    expect_bit_equal(f.dequantize(t), want.at(t.name),
                     t.name + " (" + ggml_type_name(t.type) + ")");
    ++checked;
  }
  EXPECT_EQ(checked, want.size());
  // Every supported type is covered by the fixture.
  for (GgmlType ty : {GgmlType::F32, GgmlType::F16, GgmlType::BF16, GgmlType::Q8_0, GgmlType::Q4_0,
                      GgmlType::Q4_1, GgmlType::Q4_K, GgmlType::Q6_K}) {
    bool found = false;
    for (const auto& t : f.tensors()) found |= t.type == ty;
    EXPECT_TRUE(found) << ggml_type_name(ty);
  }
}

TEST(GgufRead, UnsupportedTypeNamesTypeAndSupportedOnes) {
  const GgufFile f = GgufFile::open(gguf_fixture("types.gguf"));
  const GgufTensorInfo* t = f.find_tensor("q5_0");
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(t->type, GgmlType::Q5_0);
  EXPECT_EQ(t->nbytes, 22u);
  try {
    f.dequantize(*t);
    FAIL() << "Q5_0 should be refused";
  } catch (const IoError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("q5_0"), std::string::npos) << m;
    EXPECT_NE(m.find("Q5_0"), std::string::npos) << m;
    EXPECT_NE(m.find("Q4_K"), std::string::npos) << m;  // lists the supported ones
  }
  EXPECT_THROW(f.dequantize("missing.weight"), IoError);
}

TEST(GgufRead, BufferAndFileAgree) {
  const std::string bytes = read_bytes(gguf_fixture("types.gguf"));
  const GgufFile a = GgufFile::from_buffer(u8(bytes), bytes.size());
  const GgufFile b = GgufFile::open(gguf_fixture("types.gguf"));
  ASSERT_EQ(a.tensors().size(), b.tensors().size());
  for (size_t k = 0; k < a.tensors().size(); ++k) {
    EXPECT_EQ(a.tensors()[k].name, b.tensors()[k].name);
    EXPECT_EQ(a.tensors()[k].shape, b.tensors()[k].shape);
    EXPECT_EQ(a.tensors()[k].offset, b.tensors()[k].offset);
  }
}

// ---- writer ---------------------------------------------------------------------------------

GgufWriter reference_writer(const StateDict& in) {
  GgufWriter w("llama");
  w.add("general.name", GgufValue::string("tiny test"));
  w.add("llama.block_count", GgufValue::u32(2));
  w.add("llama.rope.freq_base", GgufValue::f32(10000.0f));
  w.add("llama.attention.layer_norm_rms_epsilon", GgufValue::f32(1e-5f));
  w.add("tokenizer.ggml.add_bos_token", GgufValue::boolean(false));
  w.add("tokenizer.ggml.tokens", GgufValue::string_array({"<s>", "a",
                                                          "\xc4\xa0"
                                                          "b"}));
  w.add("tokenizer.ggml.token_type", GgufValue::int_array(GgufType::I32, {3, 1, 1}));
  w.add("test.floats", GgufValue::f32_array({0.5f, 0.25f}));
  w.add("test.u64", GgufValue::u64(123456789012ull));
  w.add("test.neg", GgufValue::i32(-7));
  w.add_tensor("a.f32", in.at("a.f32"), GgmlType::F32);
  w.add_tensor("b.f16", in.at("b.f16"), GgmlType::F16);
  w.add_tensor("c.q8_0", in.at("c.q8_0"), GgmlType::Q8_0);
  w.add_tensor("d.q8_0_3d", in.at("d.q8_0_3d"), GgmlType::Q8_0);
  w.add_tensor("e.vec", in.at("e.vec"), GgmlType::F32);
  return w;
}

TEST(GgufWrite, BytesEqualGgufPyWriter) {
  const StateDict in = load_safetensors(gguf_fixture("writer_input.safetensors"));
  const std::string ours = reference_writer(in).serialize();
  const std::string ref = read_bytes(gguf_fixture("writer_ref.gguf"));
  ASSERT_EQ(ours.size(), ref.size());
  size_t first = 0;
  while (first < ours.size() && ours[first] == ref[first]) ++first;
  EXPECT_EQ(first, ours.size()) << "first differing byte at " << first;
}

TEST(GgufWrite, ReadsBackThroughFileAndRename) {
  const StateDict in = load_safetensors(gguf_fixture("writer_input.safetensors"));
  TempDir dir;
  const std::string path = dir / "out.gguf";
  reference_writer(in).write(path);
  EXPECT_FALSE(std::filesystem::exists(path + ".tmp"));
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.metadata()[0].first, "general.architecture");
  EXPECT_EQ(f.at("general.architecture").as_string("a"), "llama");
  EXPECT_EQ(f.at("llama.block_count").as_int("b"), 2);
  EXPECT_EQ(f.at("tokenizer.ggml.tokens").as_strings("t")[2],
            "\xc4\xa0"
            "b");
  expect_bit_equal(f.dequantize("a.f32"), in.at("a.f32"), "a.f32");
  expect_bit_equal(f.dequantize("b.f16"), in.at("b.f16").to(DType::f16).to(DType::f32), "b.f16");
  // Q8_0 round trip: within half a step of each block, plus the f16 rounding of the scale.
  const Tensor q = f.dequantize("c.q8_0");
  ASSERT_EQ(q.shape(), in.at("c.q8_0").shape());
  const auto a = values(q), b = values(in.at("c.q8_0"));
  for (size_t k = 0; k < a.size(); k += 32) {
    double amax = 0;
    for (size_t j = 0; j < 32; ++j) amax = std::max(amax, std::abs(b[k + j]));
    for (size_t j = 0; j < 32; ++j) EXPECT_NEAR(a[k + j], b[k + j], amax / 127 * 0.57 + 1e-8);
  }
}

TEST(GgufWrite, RefusesBadInput) {
  GgufWriter w("llama");
  EXPECT_THROW(w.add_tensor("x", Tensor::zeros({3, 5}), GgmlType::Q8_0), ValueError);
  EXPECT_THROW(w.add_tensor("x", Tensor::zeros({3, 32}), GgmlType::Q4_K), ValueError);
  EXPECT_THROW(w.add_tensor("x", Tensor::zeros({2}, DType::i64), GgmlType::F32), ValueError);
  w.add_tensor("x", Tensor::zeros({2}), GgmlType::F32);
  EXPECT_THROW(w.add_tensor("x", Tensor::zeros({2}), GgmlType::F32), ValueError);
  w.add("empty", GgufValue::string_array({}));
  EXPECT_THROW(w.serialize(), ValueError);
}

// ---- bad input ------------------------------------------------------------------------------

// Hand-built GGUF pieces.
struct Bytes {
  std::string s;
  Bytes& u32(uint32_t v) {
    s.append(reinterpret_cast<const char*>(&v), 4);
    return *this;
  }
  Bytes& u64(uint64_t v) {
    s.append(reinterpret_cast<const char*>(&v), 8);
    return *this;
  }
  Bytes& str(const std::string& v) {
    u64(v.size());
    s += v;
    return *this;
  }
  Bytes& raw(const std::string& v) {
    s += v;
    return *this;
  }
};
Bytes header(uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
  Bytes b;
  b.raw("GGUF").u32(version).u64(n_tensors).u64(n_kv);
  return b;
}
// One F32 tensor "w" of `dims` (ggml order) at `offset`, then padding and `data_bytes` zeros.
std::string one_tensor(std::vector<uint64_t> dims, uint32_t type, uint64_t offset,
                       size_t data_bytes) {
  Bytes b = header(3, 1, 0);
  b.str("w").u32(static_cast<uint32_t>(dims.size()));
  for (auto d : dims) b.u64(d);
  b.u32(type).u64(offset);
  b.s.resize((b.s.size() + 31) / 32 * 32, '\0');
  b.s.append(data_bytes, '\0');
  return b.s;
}

std::string error_of(const std::string& bytes) {
  try {
    const GgufFile f = GgufFile::from_buffer(u8(bytes), bytes.size(), "bad.gguf");
    for (const auto& t : f.tensors()) f.dequantize(t);
  } catch (const IoError& e) {
    return e.what();
  }
  return "";
}

TEST(GgufBadInput, EachCorruptionIsAnIoErrorNamingTheProblem) {
  auto expect_err = [](const std::string& bytes, const std::string& needle) {
    const std::string m = error_of(bytes);
    EXPECT_NE(m.find(needle), std::string::npos)
        << "message: '" << m << "' lacks '" << needle << "'";
  };
  expect_err("", "not a GGUF file");
  expect_err("GGML\x03\0\0\0", "not a GGUF file");
  expect_err(header(1, 0, 0).s, "version 1 is not supported");
  expect_err(header(0x03000000, 0, 0).s, "big-endian");
  expect_err(header(7, 0, 0).s, "unsupported GGUF version 7");
  expect_err(header(3, 0, 0).s.substr(0, 20), "truncated");
  expect_err(header(3, 0, 1ull << 40).s, "claims 1099511627776 metadata entries");
  expect_err(header(3, 1ull << 40, 0).s, "claims 1099511627776 tensors");
  expect_err(header(3, 0, 1).str("k").u32(99).u32(0).s, "unknown value type 99");
  expect_err(header(3, 0, 1).str("k").u32(8).u64(1000).s, "truncated");
  expect_err(header(3, 0, 1).str("arr").u32(9).u32(5).u64(1ull << 60).raw(std::string(64, '\0')).s,
             "'arr' claims an array of 1152921504606846976");
  expect_err(header(3, 0, 1).str("b").u32(7).raw("\x05").s, "BOOL");
  expect_err(header(3, 0, 2).str("k").u32(4).u32(1).str("k").u32(4).u32(2).s, "appears twice");
  expect_err(header(3, 0, 1).str("general.alignment").u32(4).u32(48).s, "not a power of two");
  expect_err(header(3, 0, 1).str("general.alignment").u32(10).u64(32).s, "must be UINT32");
  expect_err(one_tensor({4}, 77, 0, 32), "unknown ggml type 77");
  expect_err(one_tensor({4}, 0, 0, 8), "beyond the end of the file");
  expect_err(one_tensor({4}, 0, 64, 32), "beyond the end of the file");
  expect_err(one_tensor({4}, 0, 4, 64), "not a multiple of the alignment");
  expect_err(one_tensor({1ull << 40, 1ull << 40}, 0, 0, 32), "overflow");
  expect_err(one_tensor({1ull << 62}, 0, 0, 32), "overflow a 64-bit byte size");
  expect_err(one_tensor({0, 1ull << 40, 1ull << 40}, 0, 0, 32), "overflow");  // found by fuzzing
  expect_err(one_tensor({1, 1, 1, 1, 1}, 0, 0, 32), "has 5 dims");
  expect_err(one_tensor({33}, 8, 0, 64), "not a multiple of its block size 32");
  expect_err(one_tensor({256}, 13, 0, 192), "Q5_K, which lmforge cannot dequantize");
  // The same tensor name twice.
  {
    Bytes b = header(3, 2, 0);
    for (int k = 0; k < 2; ++k) b.str("w").u32(1).u64(4).u32(0).u64(0);
    b.s.resize(128, '\0');
    expect_err(b.s, "appears twice");
  }
  // A valid minimal file reads.
  EXPECT_EQ(error_of(one_tensor({4}, 0, 0, 32)), "");
}

TEST(GgufBadInput, EveryTruncationIsRefusedUntilTheDataIsComplete) {
  const std::string bytes = read_bytes(gguf_fixture("types.gguf"));
  const GgufFile full = GgufFile::from_buffer(u8(bytes), bytes.size());
  uint64_t data_end = 0;
  for (const auto& t : full.tensors())
    data_end = std::max(data_end, full.data_offset() + t.offset + t.nbytes);
  for (size_t n = 0; n < bytes.size(); ++n) {
    try {
      GgufFile::from_buffer(u8(bytes), n);
      EXPECT_GE(n, data_end) << "a " << n << "-byte prefix was accepted";
    } catch (const IoError&) {
      EXPECT_LT(n, data_end) << "prefix " << n;
    }
  }
}

TEST(GgufBadInput, RandomCorruptionsOnlyThrowLmfErrors) {
  const std::string bytes = read_bytes(gguf_fixture("types.gguf"));
  std::mt19937 rng(7);
  int refused = 0;
  for (int it = 0; it < 3000; ++it) {
    std::string b = bytes;
    const int flips = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < flips; ++k) {
      // Mostly the header (where structure lives), sometimes anywhere.
      const size_t pos = (rng() % 4 ? rng() % 1200 : rng()) % b.size();
      b[pos] = static_cast<char>(rng() % 3 == 0 ? 0xff : rng());
    }
    try {
      const GgufFile f = GgufFile::from_buffer(u8(b), b.size());
      for (const auto& t : f.tensors())
        if (ggml_type_supported(t.type)) f.dequantize(t);
    } catch (const Error&) {
      ++refused;
    }
  }
  EXPECT_GT(refused, 100);
}

// ---- the real SmolLM2 file ----------------------------------------------------------------------

TEST(GgufSmolLM2, MetadataAndDequantizedTensorsMatchGgufPy) {
  const std::string path = smol_gguf_path();
  if (path.empty())
    GTEST_SKIP() << "SmolLM2-135M-Instruct.Q4_1.gguf not installed "
                    "(scripts/install_model.sh)";
  const auto g = read_json_file(gguf_fixture("smollm2.json"));
  if (std::filesystem::file_size(path) != g["file_size"].get<uint64_t>())
    GTEST_SKIP() << path << " is not the file the goldens were made from";
  const GgufFile f = GgufFile::open(path);
  EXPECT_EQ(f.tensors().size(), g["n_tensors"].get<size_t>());
  EXPECT_EQ(f.metadata().size(), g["n_kv"].get<size_t>());
  EXPECT_EQ(f.data_offset(), g["data_offset"].get<uint64_t>());
  for (const auto& [key, want] : g["meta"].items()) {
    const GgufValue& v = f.at(key);
    if (want.is_string())
      EXPECT_EQ(v.as_string(key), want.get<std::string>()) << key;
    else if (want.is_number_float())
      EXPECT_EQ(v.as_float(key), want.get<double>()) << key;
    else
      EXPECT_EQ(v.as_int(key), want.get<int64_t>()) << key;
  }
  for (const auto& [name, want] : g["tensors"].items()) {
    SCOPED_TRACE(name);
    const GgufTensorInfo* ti = f.find_tensor(name);
    ASSERT_NE(ti, nullptr);
    EXPECT_EQ(ggml_type_name(ti->type), want["type"].get<std::string>());
    const Tensor t = f.dequantize(*ti);
    EXPECT_EQ(t.shape(), want["shape"].get<Shape>());
    const int64_t row = t.dim() == 1 ? t.numel() : t.size(-1);
    const int64_t rows = t.dim() == 1 ? 1 : want["hash_rows"].get<int64_t>();
    EXPECT_EQ(fnv1a64_hex(t.data_ptr(), static_cast<size_t>(rows * row) * 4),
              want["fnv1a64"].get<std::string>());
    const float* p = t.data<float>();
    for (size_t k = 0; k < want["first"].size(); ++k)
      EXPECT_EQ(p[k], want["first"][k].get<float>()) << k;
  }
  // Dequantizing the whole model is quick (it runs at model load).
  const auto t0 = std::chrono::steady_clock::now();
  size_t n = 0;
  for (const auto& ti : f.tensors()) n += static_cast<size_t>(f.dequantize(ti).numel());
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("[ SmolLM2 ] dequantized %zu parameters in %.3f s\n", n, s);
  EXPECT_GT(n, 130'000'000u);
}

}  // namespace
}  // namespace lmf::io::test
