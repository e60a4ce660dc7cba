using System.Buffers.Binary;
using System.Globalization;
using HybridServing.Contracts.Peft;
using HybridServing.MockEngine.Lora;

namespace HybridServing.MockEngine.Onnx;

/// <summary>One target module's LoRA factors, laid out for the graph: A as <c>[in, r]</c>, B as <c>[r, out]</c> times the scale.</summary>
internal sealed record LoraFactor(int Rank, float[] A, float[] ScaledB);

/// <summary>
/// An adapter's weights as the ONNX backend applies them: per layer and module (index into
/// <see cref="TinyModel.Modules"/>) the factors, or null where the adapter does not target it.
/// </summary>
internal sealed class AdapterWeights(LoraFactor?[,] factors)
{
    public LoraFactor? this[int layer, int module] => factors[layer, module];

    /// <summary>The largest rank of any factor: the rank the batch's stacks are padded to.</summary>
    public int MaxRank { get; } = factors.Cast<LoraFactor?>().Max(f => f?.Rank ?? 0);

    /// <summary>
    /// Reads the lora_A/lora_B tensors of a PEFT safetensors file (shapes already checked against the
    /// model), converts BF16/F16/F32 to float and scales B by alpha/r (alpha/√r with rsLoRA).
    /// Returns a message naming the tensor for anything the model cannot use.
    /// </summary>
    public static (AdapterWeights? Weights, string? Problem) Read(PeftAdapterInfo info, TinyModel model)
    {
        if (!info.WeightsFile.EndsWith(".safetensors", StringComparison.Ordinal))
            return (null, $"the ONNX backend reads adapter_model.safetensors only; {Path.GetFileName(info.WeightsFile)} cannot be inspected safely.");
        var header = SafetensorsHeader.ReadFile(info.WeightsFile);
        var moduleIndex = TinyModel.Modules.Select((m, i) => (m, i)).ToDictionary(x => x.m, x => x.i, StringComparer.Ordinal);
        var a = new Dictionary<(int, int), (TensorInfo Tensor, float[] Values)>();
        var b = new Dictionary<(int, int), (TensorInfo Tensor, float[] Values)>();
        using var file = new FileStream(info.WeightsFile, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 16);
        var dataStart = 8 + header.HeaderLength;
        foreach (var tensor in header.Tensors)
        {
            var match = LoraAdapterRegistry.TensorName().Match(tensor.Name);
            if (!match.Success) continue;
            var layer = int.Parse(match.Groups["layer"].Value, CultureInfo.InvariantCulture);
            var module = moduleIndex[match.Groups["module"].Value]; // CheckShapes admitted only the model's modules
            var (values, problem) = ReadTensor(file, dataStart, tensor);
            if (problem is not null) return (null, problem);
            (match.Groups["factor"].Value == "A" ? a : b)[(layer, module)] = (tensor, values!);
        }

        var factors = new LoraFactor?[model.Layers, TinyModel.Modules.Count];
        foreach (var (key, (tensorA, valuesA)) in a)
        {
            if (!b.Remove(key, out var factorB))
                return (null, $"LoRA weight '{tensorA.Name}' has no matching lora_B tensor.");
            var (layer, module) = key;
            var rank = (int)tensorA.Shape[0];
            var (inDim, outDim) = model.Dims(TinyModel.Modules[module]);
            var scale = (float)Scale(info.Config, tensorA.Name, rank);
            // PEFT stores A as [r, in] and B as [out, r]; the graph multiplies x·A·B, so both are transposed.
            var at = new float[inDim * rank];
            for (var r = 0; r < rank; r++)
                for (var i = 0; i < inDim; i++) at[i * rank + r] = valuesA[r * inDim + i];
            var bt = new float[rank * outDim];
            for (var o = 0; o < outDim; o++)
                for (var r = 0; r < rank; r++) bt[r * outDim + o] = factorB.Values[o * rank + r] * scale;
            factors[layer, module] = new LoraFactor(rank, at, bt);
        }
        if (b.Count > 0) return (null, $"LoRA weight '{b.Values.First().Tensor.Name}' has no matching lora_A tensor.");
        if (a.Count == 0) return (null, "the adapter holds no lora_A/lora_B tensors for the model's modules.");
        return (new AdapterWeights(factors), null);
    }

    /// <summary>PEFT's scaling: lora_alpha (or its alpha_pattern override) over r, or over √r with use_rslora.</summary>
    internal static double Scale(PeftConfig config, string tensorName, int rank)
    {
        var alpha = config.LoraAlpha ?? rank;
        if (config.AlphaPattern is { Count: > 0 } pattern)
        {
            foreach (var (key, value) in pattern)
                if (tensorName.Contains(key, StringComparison.Ordinal)) { alpha = value; break; }
        }
        return config.UseRslora == true ? alpha / Math.Sqrt(rank) : alpha / rank;
    }

    private static (float[]? Values, string? Problem) ReadTensor(FileStream file, long dataStart, TensorInfo tensor)
    {
        var size = tensor.DType switch { "F32" => 4, "F16" or "BF16" => 2, _ => 0 };
        if (size == 0) return (null, $"LoRA weight '{tensor.Name}' has dtype {tensor.DType}; BF16, F16 or F32 is needed.");
        var bytes = new byte[tensor.ByteLength];
        file.Position = dataStart + tensor.Begin;
        if (file.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false) != bytes.Length)
            return (null, $"LoRA weight '{tensor.Name}' is truncated: the file ends inside its data.");
        var values = new float[bytes.Length / size];
        for (var i = 0; i < values.Length; i++)
        {
            var raw = bytes.AsSpan(i * size, size);
            var value = tensor.DType switch
            {
                "F32" => BinaryPrimitives.ReadSingleLittleEndian(raw),
                "F16" => (float)BitConverter.UInt16BitsToHalf(BinaryPrimitives.ReadUInt16LittleEndian(raw)),
                _ => BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(raw) << 16),
            };
            if (!float.IsFinite(value))
                return (null, $"LoRA weight '{tensor.Name}' holds a non-finite value ({value.ToString(CultureInfo.InvariantCulture)}) at element {i}.");
            values[i] = value;
        }
        return (values, null);
    }
}
