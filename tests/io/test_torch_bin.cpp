// pytorch_model.bin: torch.save zip files loaded exactly (strided views, shared storages, zip64),
// hostile pickles refused without executing anything, broken archives reported.
#include <gtest/gtest.h>

#include "io/io_test_util.h"
#include "io/unpickler.h"
#include "lmforge/io/checkpoint.h"
#include "lmforge/io/json.h"

namespace lmf::io::test {
namespace {

const nlohmann::json& goldens() {
  static const nlohmann::json g = read_json_file(fixture("io_goldens.json"));
  return g;
}

void expect_values(const StateDict& sd, const std::string& set) {
  const auto& g = goldens()[set];
  ASSERT_EQ(sd.size(), g.size());
  for (const auto& [name, want] : g.items()) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(sd.count(name));
    EXPECT_EQ(sd.at(name).shape(), want["shape"].get<Shape>());
    auto exp = want["values"].get<std::vector<double>>();
    if (want["dtype"] == "F64")
      for (double& v : exp) v = static_cast<float>(v);
    EXPECT_EQ(values(sd.at(name)), exp);
  }
}

template <class Fn>
std::string io_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const IoError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no IoError";
  return "";
}

TEST(IoTorchBin, LoadsEveryDtypeExactly) {
  const auto sd = load_torch_bin(fixture("dtypes.bin"), std::nullopt);
  expect_values(sd, "dtypes");
  EXPECT_EQ(sd.at("f16").dtype(), DType::f16);
  EXPECT_EQ(sd.at("bf16").dtype(), DType::bf16);
  EXPECT_EQ(sd.at("f64").dtype(), DType::f32);
  EXPECT_EQ(sd.at("i16").dtype(), DType::i32);
  EXPECT_EQ(sd.at("bool").dtype(), DType::boolean);
  EXPECT_EQ(load_torch_bin(fixture("dtypes.bin")).at("f16").dtype(), DType::f32);
}

TEST(IoTorchBin, KeepsTiedStoragesStridesAndOffsetsZeroCopy) {
  const std::string path = fixture("tied.bin");
  const auto sd = load_torch_bin(path);
  expect_values(sd, "tied");
  const Tensor &emb = sd.at("embed.weight"), &head = sd.at("lm_head.weight");
  EXPECT_EQ(emb.data_ptr(), head.data_ptr());
  EXPECT_EQ(emb.storage()->nbytes(), std::filesystem::file_size(path));  // a view of the map
  const Tensor &w = sd.at("proj.weight"), &wt = sd.at("proj_t");
  EXPECT_EQ(w.data_ptr(), wt.data_ptr());
  EXPECT_EQ(wt.strides(), (Shape{1, 4}));
  EXPECT_FALSE(wt.is_contiguous());
  EXPECT_EQ(sd.at("cols").strides(), (Shape{6, 1}));
  EXPECT_EQ(
      static_cast<char*>(sd.at("cols").data_ptr()) - static_cast<char*>(sd.at("rows").data_ptr()),
      (2 - 6) * 4);  // rows starts at element 6, cols at element 2 of the same storage
}

TEST(IoTorchBin, ConversionKeepsTiesShared) {
  const auto sd = load_torch_bin(fixture("tied.bin"), DType::f16);
  EXPECT_EQ(sd.at("embed.weight").dtype(), DType::f16);
  EXPECT_EQ(sd.at("embed.weight").data_ptr(), sd.at("lm_head.weight").data_ptr());
  EXPECT_EQ(sd.at("proj_t").strides(), (Shape{1, 4}));
}

TEST(IoTorchBin, ModuleStateDictWithMetadataBuild) {
  expect_values(load_torch_bin(fixture("module.bin")), "module");
}

TEST(IoTorchBin, Zip64CentralDirectoryMatchesPlainZip) {
  expect_values(load_torch_bin(fixture("tied_zip64.bin")), "tied");
}

TEST(IoTorchBin, SameValuesAsSafetensorsThroughCheckpointDir) {
  TempDir dir;
  std::filesystem::copy_file(fixture("tied.bin"), dir / "pytorch_model.bin");
  expect_values(load_checkpoint_dir(dir.path.string()), "tied");
  // safetensors is preferred when both exist
  std::filesystem::copy_file(fixture("dtypes.safetensors"), dir / "model.safetensors");
  EXPECT_TRUE(load_checkpoint_dir(dir.path.string()).count("i16"));
  TempDir empty;
  const auto msg = io_error_of([&] { load_checkpoint_dir(empty.path.string()); });
  EXPECT_NE(msg.find("model.safetensors, model.safetensors.index.json, pytorch_model.bin"),
            std::string::npos)
      << msg;
  EXPECT_THROW(load_checkpoint_dir(dir / "nope"), IoError);
}

TEST(IoTorchBin, RefusesHostileGlobalsWithoutRunningThem) {
  const auto sys = io_error_of([] { load_torch_bin(fixture("evil_os_system.bin")); });
  EXPECT_NE(sys.find("refusing to unpickle os.system"), std::string::npos) << sys;
  EXPECT_NE(sys.find("convert it with safetensors"), std::string::npos) << sys;
  const auto ev = io_error_of([] { load_torch_bin(fixture("evil_eval.bin")); });
  EXPECT_NE(ev.find("refusing to unpickle builtins.eval"), std::string::npos) << ev;
}

TEST(IoTorchBin, BrokenArchivesAreIoErrors) {
  auto has = [](const std::string& msg, const char* needle) {
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  };
  has(io_error_of([] { load_torch_bin(fixture("compressed.bin")); }), "is compressed");
  has(io_error_of([] { load_torch_bin(fixture("missing_data.bin")); }), "/data/0'");
  has(io_error_of([] { load_torch_bin(fixture("legacy.bin")); }), "legacy torch.save format");
  has(io_error_of([] { load_torch_bin(fixture("dtypes.safetensors")); }), "no zip signature");
  const std::string bytes = read_bytes(fixture("tied.bin"));
  for (size_t n = 0; n < bytes.size(); n += 53)
    EXPECT_THROW(load_torch_bin_buffer(u8(bytes), n), IoError) << n << " bytes";
}

TEST(IoTorchBin, CorruptedBytesNeverCrash) {
  const std::string bytes = read_bytes(fixture("tied.bin"));
  uint64_t s = 12345;
  int loaded = 0;
  for (int trial = 0; trial < 300; ++trial) {
    std::string b = bytes;
    for (int k = 0; k < 3; ++k) {
      s = s * 6364136223846793005ull + 1442695040888963407ull;
      b[(s >> 33) % b.size()] = static_cast<char>(s >> 20);
    }
    try {
      load_torch_bin_buffer(u8(b), b.size());
      ++loaded;
    } catch (const IoError&) {
    }
  }
  EXPECT_GT(loaded, 0);  // most flips hit tensor data, which loads fine
}

// Unpickles hand-written opcodes with every storage key resolving to 64 zero bytes.
StateDict unpickle(const std::string& pkl) {
  auto zeros = Storage::allocate(64);
  std::memset(zeros->data(), 0, 64);
  return detail::unpickle_state_dict(
      u8(pkl), pkl.size(),
      [&](const std::string&) {
        return detail::StorageBytes{zeros, 0, 64};
      },
      "test.pkl", DType::f32);
}

// Pickle opcode builders (hand-written bytes; hex escapes in literals are too easy to get wrong).
std::string str(const std::string& v) {
  std::string out = "X";
  for (int i = 0; i < 4; ++i) out += static_cast<char>((v.size() >> (8 * i)) & 0xff);
  return out + v;
}
std::string int1(int v) {
  return std::string("K") + static_cast<char>(v);
}
const std::string kTuple2 = "\x86", kTuple1 = "\x85", kFalse = "\x89";

// {'w': _rebuild_tensor_v2(<16-float storage>, ... up to the storage offset argument.
const std::string kTensorPrefix = "\x80\x02}" + str("w") + "ctorch._utils\n_rebuild_tensor_v2\n((" +
                                  str("storage") + "ctorch\nFloatStorage\n" + str("0") +
                                  str("cpu") + int1(16) + "tQ";
const std::string kHooks = "ccollections\nOrderedDict\n)R";

TEST(IoUnpickler, BuildsTensorsFromHandWrittenOpcodes) {
  // {'w': _rebuild_tensor_v2(storage, 2, (2, 3), (3, 1), False, OrderedDict())}
  const std::string pkl = kTensorPrefix + int1(2) + int1(2) + int1(3) + kTuple2 + int1(3) +
                          int1(1) + kTuple2 + kFalse + kHooks + "tRs.";
  const auto sd = unpickle(pkl);
  EXPECT_EQ(sd.at("w").shape(), (Shape{2, 3}));
  EXPECT_EQ(sd.at("w").strides(), (Shape{3, 1}));
  EXPECT_EQ(sd.at("w").offset(), 2);
}

TEST(IoUnpickler, MalformedOrHostilePicklesAreIoErrors) {
  auto has = [](const std::string& pkl, const char* needle) {
    const auto msg = io_error_of([&] { unpickle(pkl); });
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  };
  has("\x80\x02", "truncated");
  has(".", "stack underflow");
  has("h\x05", "never stored");
  has("(i__builtin__\nobject\n.", "opcode INST");
  has("\x80\x02N)\x81.", "opcode NEWOBJ");
  has("cposix\nsystem\n.", "posix.system");
  has("cbuiltins\ngetattr\n.", "builtins.getattr");
  has("}NNb.", "BUILD on a None");
  has("]" + int1(1) + int1(2) + "s.", "SETITEM on a list");
  has(int1(1) + ".", "not a state dict");
  has("}" + str("a") + int1(1) + "s.", "'a' is a int, not a tensor");
  has("\x8a\x09" + std::string(9, '\x01'), "does not fit");
  has(kTensorPrefix + int1(15) + int1(2) + kTuple1 + int1(1) + kTuple1 + kFalse + "NtRs.",
      "reaches past");
  has(kTensorPrefix + int1(0) + "J\xff\xff\xff\xff" + kTuple1 + int1(1) + kTuple1 + kFalse +
          "NtRs.",
      "negative size");
  has(kTensorPrefix + int1(0) + int1(2) + kTuple1 + int1(1) + kTuple1 + kFalse + "NNNtRs.",
      "takes 6 or 7 arguments");
  const std::string big = "\x8a\x08" + std::string(7, '\0') + "\x40";  // 2^62 as LONG1
  has(kTensorPrefix + int1(0) + big + big + kTuple2 + int1(0) + int1(0) + kTuple2 + kFalse +
          "NtRs.",
      "too many elements");
  has("ctorch\nFloatStorage\n)R.", "a call to torch.FloatStorage");
}

}  // namespace
}  // namespace lmf::io::test
