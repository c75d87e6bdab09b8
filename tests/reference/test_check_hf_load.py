"""Unit checks of scripts/reference/check_hf_load.py's comparison of a saved folder with what
transformers writes: any transformers 5.x version string passes, any other difference fails.
Needs only python3 (no torch). Run: python3 -m unittest discover -s tests/reference -v"""
import json
import os
import shutil
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "reference"))
import check_hf_load  # noqa: E402

CONFIG = {"architectures": ["BertModel"], "hidden_size": 32, "model_type": "bert",
          "layer_norm_eps": 1e-12, "transformers_version": "5.24.0", "vocab_size": 99}


class CompareSaved(unittest.TestCase):
    def folder(self, config, weights=b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", extra=None):
        d = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, d)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
        with open(os.path.join(d, "model.safetensors"), "wb") as f:
            f.write(weights)
        for name, data in (extra or {}).items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        return d

    def test_same_folder_passes(self):
        self.assertEqual(check_hf_load.compare_saved(self.folder(CONFIG), self.folder(CONFIG)), [])

    def test_only_the_writers_version_differs_passes(self):
        newer = dict(CONFIG, transformers_version="5.25.0")
        self.assertEqual(check_hf_load.compare_saved(self.folder(CONFIG), self.folder(newer)), [])
        without = {k: v for k, v in CONFIG.items() if k != "transformers_version"}
        self.assertEqual(check_hf_load.compare_saved(self.folder(without), self.folder(newer)), [])

    def test_another_field_fails_and_is_named(self):
        other = dict(CONFIG, transformers_version="5.25.0", hidden_size=64)
        p = check_hf_load.compare_saved(self.folder(CONFIG), self.folder(other))
        self.assertEqual(len(p), 1)
        self.assertIn("'hidden_size'", p[0])

    def test_type_change_fails(self):  # 32 vs 32.0 are equal in Python, not in config.json
        other = dict(CONFIG, hidden_size=32.0)
        self.assertEqual(len(check_hf_load.compare_saved(self.folder(CONFIG), self.folder(other))),
                         1)

    def test_missing_and_extra_fields_fail(self):
        fewer = {k: v for k, v in CONFIG.items() if k != "layer_norm_eps"}
        self.assertEqual(len(check_hf_load.compare_saved(self.folder(CONFIG), self.folder(fewer))),
                         1)
        self.assertEqual(len(check_hf_load.compare_saved(self.folder(fewer), self.folder(CONFIG))),
                         1)

    def test_weight_bytes_are_compared_strictly(self):
        a = self.folder(CONFIG)
        b = self.folder(CONFIG, weights=b"\x08\x00\x00\x00\x00\x00\x00\x00{}     \x20\x21")
        p = check_hf_load.compare_saved(a, b)
        self.assertEqual(len(p), 1)
        self.assertIn("model.safetensors", p[0])

    def test_other_files_are_compared_strictly(self):
        a = self.folder(CONFIG, extra={"generation_config.json": b'{"a": 1}'})
        b = self.folder(CONFIG, extra={"generation_config.json": b'{"a": 2}'})
        self.assertEqual(len(check_hf_load.compare_saved(a, b)), 1)
        # a file transformers writes that the saved folder lacks
        self.assertEqual(len(check_hf_load.compare_saved(self.folder(CONFIG), b)), 1)


if __name__ == "__main__":
    unittest.main()
