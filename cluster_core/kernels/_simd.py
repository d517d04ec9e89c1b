"""Explicit SIMD vectors for numba kernels: a float32 and an int32 vector type and the few
operations a register-blocked distance kernel needs.

numba's loop vectoriser does not keep accumulators in registers across a reduction loop
(every partial sum goes through memory), so a blocked ``centers x rows`` product written as
plain loops runs at a fifth of the core's FMA rate. Values of these types are LLVM vectors
(``<LANES x float>``), SSA values that LLVM keeps in registers; each operation below is a
single LLVM instruction or intrinsic, so a kernel written with them compiles to the
register-blocked loop one would write with compiler intrinsics in C.

``LANES`` is 16 (one AVX-512 register) where the CPU has AVX-512 and 8 (one AVX register)
otherwise; LLVM splits or joins vectors for whatever the CPU has, so the kernels stay
correct anywhere numba runs, and only their speed depends on the width. (numba's on-disk
cache keys on the target CPU, so a kernel compiled for one width is never loaded on a CPU
of the other; it does not notice edits to this module, though: clear the kernels'
``__pycache__`` after changing it.)
"""

from __future__ import annotations

from llvmlite import binding, ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


def _host_lanes() -> int:
    """16 float32 lanes on CPUs with AVX-512, else 8."""
    try:
        features = binding.get_host_cpu_features()
    except RuntimeError:  # not an x86 host or features unknown: 8 is a safe width
        return 8
    return 16 if features.get("avx512f", False) else 8


LANES = _host_lanes()
_FLOATS = ir.VectorType(ir.FloatType(), LANES)
_INTS = ir.VectorType(ir.IntType(32), LANES)


class FloatVector(types.Type):
    """``LANES`` float32 values held as one LLVM vector."""

    def __init__(self):
        super().__init__(name=f"float32x{LANES}")


class IntVector(types.Type):
    """``LANES`` int32 values held as one LLVM vector."""

    def __init__(self):
        super().__init__(name=f"int32x{LANES}")


float_vector = FloatVector()
int_vector = IntVector()


@register_model(FloatVector)
class _FloatVectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _FLOATS)


@register_model(IntVector)
class _IntVectorModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _INTS)


def _broadcast(builder, value, vector_type):
    undefined = ir.Constant(vector_type, ir.Undefined)
    first = builder.insert_element(undefined, value, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), LANES), [0] * LANES)
    return builder.shuffle_vector(first, undefined, zeros)


@intrinsic
def splat(typingctx, value):
    """A vector with ``value`` in every lane (float32 for a float, int32 for an integer)."""
    if isinstance(value, types.Float):
        target, vector_type, result = types.float32, _FLOATS, float_vector
    elif isinstance(value, types.Integer):
        target, vector_type, result = types.int32, _INTS, int_vector
    else:
        return None

    def codegen(context, builder, signature, args):
        scalar = context.cast(builder, args[0], signature.args[0], target)
        return _broadcast(builder, scalar, vector_type)

    return result(value), codegen


def _element_pointer(context, builder, array_type, array, index, vector_type):
    data = context.make_array(array_type)(context, builder, array).data
    return builder.bitcast(builder.gep(data, [index]), vector_type.as_pointer())


def _contiguous_1d(array, dtype) -> bool:
    return isinstance(array, types.Array) and array.ndim == 1 and array.layout == "C" and array.dtype == dtype


@intrinsic
def load(typingctx, array, index):
    """``array[index:index + LANES]`` of a contiguous 1-D float32 array, as a vector (no
    bounds check: the caller keeps ``index + LANES <= len(array)``)."""
    if not _contiguous_1d(array, types.float32) or not isinstance(index, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], _FLOATS)
        return builder.load(pointer, align=4)

    return float_vector(array, index), codegen


@intrinsic
def store(typingctx, array, index, vector):
    """Write ``vector`` to ``array[index:index + LANES]`` (contiguous 1-D float32 or int32,
    matching the vector; no bounds check)."""
    if vector == float_vector and _contiguous_1d(array, types.float32):
        vector_type = _FLOATS
    elif vector == int_vector and _contiguous_1d(array, types.int32):
        vector_type = _INTS
    else:
        return None

    def codegen(context, builder, signature, args):
        pointer = _element_pointer(context, builder, signature.args[0], args[0], args[1], vector_type)
        builder.store(args[2], pointer, align=4)
        return context.get_dummy_value()

    return types.none(array, index, vector), codegen


@intrinsic
def fma(typingctx, a, b, c):
    """``a * b + c`` lane by lane, fused (one rounding)."""
    if not (a == b == c == float_vector):
        return None

    def codegen(context, builder, signature, args):
        function_type = ir.FunctionType(_FLOATS, [_FLOATS, _FLOATS, _FLOATS])
        function = cgutils.get_or_insert_function(builder.module, function_type, f"llvm.fma.v{LANES}f32")
        return builder.call(function, args)

    return float_vector(a, b, c), codegen


_TOP_TWO = types.Tuple((float_vector, float_vector, int_vector))


@intrinsic
def top_two_update(typingctx, value, first, second, label, index):
    """Lane by lane, the smallest (``first``, with its ``label``) and second smallest
    (``second``) values after also seeing ``value`` with label ``index``; an earlier label
    keeps a tie. Returns ``(first, second, label)``."""
    if not (value == first == second == float_vector and label == index == int_vector):
        return None

    def codegen(context, builder, signature, args):
        value, first, second, label, index = args
        smaller = builder.fcmp_ordered("<", value, first)
        below_second = builder.fcmp_ordered("<", value, second)
        new_second = builder.select(smaller, first, builder.select(below_second, value, second))
        new_first = builder.select(smaller, value, first)
        new_label = builder.select(smaller, index, label)
        return context.make_tuple(builder, _TOP_TWO, (new_first, new_second, new_label))

    return _TOP_TWO(value, first, second, label, index), codegen


@intrinsic
def store_strided(typingctx, array, index, stride, vector):
    """Write lane ``l`` of a float ``vector`` to ``array[index + l * stride]`` (contiguous 1-D
    float32; no bounds check), with one scalar store per lane: a strided store that avoids
    the hardware scatter LLVM would otherwise pick (several times slower on some CPUs)."""
    if not (vector == float_vector and _contiguous_1d(array, types.float32)):
        return None
    if not (isinstance(index, types.Integer) and isinstance(stride, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        data = context.make_array(signature.args[0])(context, builder, args[0]).data
        index = context.cast(builder, args[1], signature.args[1], types.intp)
        stride = context.cast(builder, args[2], signature.args[2], types.intp)
        for lane in range(LANES):
            value = builder.extract_element(args[3], ir.Constant(ir.IntType(32), lane))
            offset = builder.add(index, builder.mul(stride, ir.Constant(index.type, lane)))
            builder.store(value, builder.gep(data, [offset]), align=4)
        return context.get_dummy_value()

    return types.none(array, index, stride, vector), codegen


@intrinsic
def subtract(typingctx, a, b):
    """``a - b`` lane by lane."""
    if not (a == b == float_vector):
        return None

    def codegen(context, builder, signature, args):
        return builder.fsub(*args)

    return float_vector(a, b), codegen
