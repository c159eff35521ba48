#!/usr/bin/env python3
"""Writes the small seed corpora for graft's fuzz targets into fuzz/corpus/TARGET.

No PyTorch needed: the .pth files are built with Python's own pickle, in the layouts torch.save
writes (the zip archive since 1.6, and the legacy stream), for a state dict of two tiny float
tensors, so each seed is a few hundred bytes and the fuzzer mutates structure, not bulk data.
Run from the repository root: python3 fuzz/seeds.py
"""
import base64, collections, io, json, os, pickle, shutil, struct, sys, types, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def fake_torch():
    """Stand-ins pickled under torch's names: what pickle writes is module + name only."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise RuntimeError("never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    storages = {}
    for name in ["FloatStorage", "LongStorage", "HalfStorage"]:
        cls = type(name, (), {"__module__": "torch"})
        setattr(torch, name, cls)
        storages[name] = cls
    torch._utils = utils
    sys.modules["torch"] = torch
    sys.modules["torch._utils"] = utils
    return utils, storages


UTILS, STORAGES = fake_torch()


class Storage:
    def __init__(self, key, kind, values, fmt):
        self.key, self.kind, self.values, self.fmt = key, kind, values, fmt

    def raw(self):
        return struct.pack("<%d%s" % (len(self.values), self.fmt), *self.values)


class Tensor:
    def __init__(self, storage, shape):
        self.storage, self.shape = storage, shape

    def __reduce__(self):
        stride, acc = [], 1
        for d in reversed(self.shape):
            stride.insert(0, acc)
            acc *= d
        return (UTILS._rebuild_tensor_v2,
                (self.storage, 0, tuple(self.shape), tuple(stride), False, collections.OrderedDict()))


def state_dict():
    w = Storage("0", STORAGES["FloatStorage"], [0.5, -1.0, 2.0, 0.25, 1.5, -0.75], "f")
    b = Storage("1", STORAGES["FloatStorage"], [0.1, 0.2], "f")
    n = Storage("2", STORAGES["LongStorage"], [7], "q")
    sd = collections.OrderedDict()
    sd["fc.weight"] = Tensor(w, [2, 3])
    sd["fc.bias"] = Tensor(b, [2])
    sd["bn.num_batches_tracked"] = Tensor(n, [])
    return sd, [w, b, n]


class ZipPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", len(obj.values))
        return None


class LegacyPickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, Storage):
            return ("storage", obj.kind, obj.key, "cpu", len(obj.values), None)
        return None


def pth_zip():
    sd, storages = state_dict()
    buf = io.BytesIO()
    ZipPickler(buf, protocol=2).dump(sd)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", buf.getvalue())
        z.writestr("archive/byteorder", "little")
        for s in storages:
            z.writestr("archive/data/" + s.key, s.raw())
        z.writestr("archive/version", "3\n")
    return out.getvalue()


def pth_legacy():
    sd, storages = state_dict()
    out = io.BytesIO()
    pickle.dump(0x1950A86A20F9469CFC6C, out, protocol=2)
    pickle.dump(1001, out, protocol=2)
    pickle.dump({"protocol_version": 1001, "little_endian": True,
                 "type_sizes": {"short": 2, "int": 4, "long": 4}}, out, protocol=2)
    LegacyPickler(out, protocol=2).dump(sd)
    pickle.dump([s.key for s in storages], out, protocol=2)
    for s in storages:
        out.write(struct.pack("<q", len(s.values)))
        out.write(s.raw())
    return out.getvalue()


def safetensors():
    tensors = {"fc.weight": ("F32", [2, 3], struct.pack("<6f", 0.5, -1, 2, 0.25, 1.5, -0.75)),
               "fc.bias": ("F32", [2], struct.pack("<2f", 0.1, 0.2)),
               "step": ("I64", [], struct.pack("<q", 7))}
    header, data, offset = {"__metadata__": {"format": "pt"}}, b"", 0
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        data += raw
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def wheel():
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("pkg/__init__.py", "")
        z.writestr("weights.pth", pth_zip())
        z.writestr("pkg-1.0.dist-info/RECORD", "pkg/__init__.py,,\n")
    return out.getvalue()


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    write("pth_zip", "state_dict.pth", pth_zip())
    write("pth_legacy", "state_dict.legacy.pth", pth_legacy())
    write("safetensors", "state_dict.safetensors", safetensors())
    write("wheel", "one_member.whl", wheel())
    from PIL import Image
    images = os.path.join(ROOT, "tests", "fixtures", "images")
    for name in ["cmyk.jpg", "lossless.webp", "palette.png", "plain.bmp"]:
        shutil.copy(os.path.join(images, name), os.path.join(CORPUS, "image", name))
    small = Image.new("RGB", (8, 6), (200, 30, 60))
    for fmt, name in [("GIF", "small.gif"), ("JPEG", "small.jpg"), ("PNG", "small.png"),
                      ("WEBP", "small.webp"), ("BMP", "small.bmp")]:
        buf = io.BytesIO()
        small.save(buf, fmt)
        write("image", name, buf.getvalue())
    write("list", "labels.csv", b"path,label\nants/0.jpg,ants\nbees/1.jpg,bees\n")
    write("list", "split.csv", b"path,split\nants/0.jpg,train\nants/1.jpg,val\nbees/0.jpg,train\nbees/1.jpg,test\n")
    write("list", "labels.tsv", b"# comment\nants/0.jpg\tants\n\nbees/0.jpg\tbees\r\n")
    # KServe V2 infer bodies, for the fuzz target's 8x8 input (graft_fuzz::V2_INPUT_SIZE).
    jpeg = open(os.path.join(CORPUS, "image", "small.jpg"), "rb").read()
    def v2(shape, datatype, data):
        body = {"inputs": [{"name": "input", "shape": shape, "datatype": datatype, "data": data}]}
        return json.dumps(body).encode()
    write("v2_request", "bytes.json", v2([1], "BYTES", [base64.b64encode(jpeg).decode()]))
    write("v2_request", "fp32.json", v2([1, 3, 8, 8], "FP32", [i / 191 - 0.5 for i in range(192)]))
    write("v2_request", "fp32_two.json", v2([2, 3, 8, 8], "FP32", [0.25] * 384))
    # The binary tensor data extension (tritonclient's default): the JSON, then the values. The
    # target takes the JSON's own end as the Inference-Header-Content-Length.
    def v2_binary(shape, datatype, data):
        body = {"inputs": [{"name": "input", "shape": shape, "datatype": datatype,
                            "parameters": {"binary_data_size": len(data)}}]}
        return json.dumps(body).encode() + data
    write("v2_request", "bytes.bin", v2_binary([1], "BYTES", struct.pack("<I", len(jpeg)) + jpeg))
    write("v2_request", "fp32.bin", v2_binary([1, 3, 8, 8], "FP32", struct.pack("<192f", *[i / 191 - 0.5 for i in range(192)])))
    # POST /v1/predict requests: the Content-Type line, then the body (graft_fuzz::predict_upload).
    png = open(os.path.join(CORPUS, "image", "small.png"), "rb").read()
    write("predict_upload", "raw.jpg", b"image/jpeg\n" + jpeg)
    def part(headers, data):
        return b"--XyZ\r\n" + headers + b"\r\n\r\n" + data + b"\r\n"
    form = (part(b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\nContent-Type: image/jpeg', jpeg)
            + part(b'Content-Disposition: form-data; name="image"', png) + b"--XyZ--\r\n")
    write("predict_upload", "two_parts.form", b"multipart/form-data; boundary=XyZ\n" + form)
    # corpus/run_files holds the files of a real run directory (graft train on hymenoptera),
    # committed as they were written.


if __name__ == "__main__":
    os.makedirs(os.path.join(CORPUS, "image"), exist_ok=True)
    main()
