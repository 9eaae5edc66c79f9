"""Writing the golden files: safetensors, tensor descriptions and state-dict deltas."""
import collections
import json
import os
import struct
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', 'fixtures'))

from make_format_fixtures_lib import DT, describe, raw_bytes  # noqa: E402


def safetensors_bytes(tensors, metadata=None):
    """A safetensors file: 8-byte little-endian header length, the JSON header padded with spaces
    to a multiple of 8, then the tensors' bytes back to back in the given order, offsets from 0."""
    header, offset, blobs = collections.OrderedDict(), 0, []
    if metadata:
        header['__metadata__'] = metadata
    for name, t in tensors.items():
        b = raw_bytes(t)
        header[name] = {'dtype': DT[t.dtype], 'shape': list(t.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)
    return struct.pack('<Q', len(h)) + h + b''.join(blobs)


def write_bytes(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(data)


def write_json(path, obj):
    write_bytes(path, (json.dumps(obj, indent=1, allow_nan=False) + '\n').encode())


def describe_state_dict(sd, inexact=()):
    """dtype, shape, sha256 of the little-endian bytes, float64 sum and first 4 values per tensor;
    'exact': false on tensors whose bytes come from arithmetic (compare those with a tolerance)."""
    out = describe(sd)
    for k in inexact:
        out[k]['exact'] = False
    return out


def state_dict_delta(desc, base):
    """`desc` as changes to `base`: 'drop' lists the base keys it lacks; 'set' maps each key whose
    description differs to the fields that differ, and each new key to its full description plus
    'after' (the key it follows; null when first). Keys keep the base order otherwise."""
    drop = [k for k in base if k not in desc]
    changes, prev = collections.OrderedDict(), None
    for k, d in desc.items():
        if k in base:
            diff = {f: v for f, v in d.items() if base[k].get(f) != v}
            if diff:
                changes[k] = diff
        else:
            changes[k] = dict(d, after=prev)
        prev = k
    delta = {'base': '2d', 'drop': drop, 'set': changes}
    assert list(resolve_delta(delta, base).items()) == list(desc.items()), 'delta does not round-trip'
    return delta


def resolve_delta(delta, base):
    """The full ordered description from a delta (what a consumer of golden.json does)."""
    out = collections.OrderedDict((k, dict(v)) for k, v in base.items() if k not in set(delta['drop']))
    items = list(out.items())
    for k, d in delta['set'].items():
        if k in out:
            items = [(kk, dict(vv, **d) if kk == k else vv) for kk, vv in items]
        else:
            d = dict(d)
            after = d.pop('after')
            pos = 0 if after is None else [kk for kk, _ in items].index(after) + 1
            items.insert(pos, (k, d))
    return collections.OrderedDict(items)
