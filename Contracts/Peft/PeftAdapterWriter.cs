using System.Buffers.Binary;
using System.Text;
using System.Text.Json;

namespace HybridServing.Contracts.Peft;

/// <summary>Linear-layer shapes of a base model, enough to write adapters that fit it.</summary>
public sealed record BaseModelShape(string Name, int Layers, IReadOnlyDictionary<string, (int In, int Out)> Modules)
{
    private static readonly Dictionary<string, BaseModelShape> Known = new(StringComparer.OrdinalIgnoreCase)
    {
        // Llama 3.1 8B: hidden 4096, 32 layers, 8 KV heads x 128, MLP 14336 (its config.json).
        ["meta-llama/Llama-3.1-8B-Instruct"] = Llama("meta-llama/Llama-3.1-8B-Instruct", 32, 4096, 1024, 14336),
        ["meta-llama/Llama-3.1-8B"] = Llama("meta-llama/Llama-3.1-8B", 32, 4096, 1024, 14336),
        // A tiny shape for tests that need many adapters quickly.
        ["test/tiny"] = Llama("test/tiny", 2, 64, 16, 128),
    };

    public static BaseModelShape For(string baseModel) =>
        Known.TryGetValue(baseModel, out var shape) ? shape
        : throw new ArgumentException($"No known layer shapes for base model '{baseModel}'. Known: {string.Join(", ", Known.Keys)}.", nameof(baseModel));

    private static BaseModelShape Llama(string name, int layers, int hidden, int kv, int mlp) => new(name, layers,
        new Dictionary<string, (int, int)>
        {
            ["q_proj"] = (hidden, hidden), ["k_proj"] = (hidden, kv), ["v_proj"] = (hidden, kv), ["o_proj"] = (hidden, hidden),
            ["gate_proj"] = (hidden, mlp), ["up_proj"] = (hidden, mlp), ["down_proj"] = (mlp, hidden),
        });
}

/// <summary>Writes valid PEFT LoRA directories (config + BF16 safetensors) for samples, tests and benchmarks.</summary>
public static class PeftAdapterWriter
{
    /// <summary>The tensor dtypes <see cref="Write"/> can store.</summary>
    public static readonly IReadOnlyList<string> DTypes = ["BF16", "F16", "F32"];

    /// <summary>
    /// Writes an adapter. By default lora_B is zero (PEFT's initialisation: the adapter changes nothing)
    /// and A holds small BF16 values. With <paramref name="trained"/> both factors hold seeded values of
    /// order 1/√in and 1/√r, so the adapter changes a model's answers as a trained one does;
    /// <paramref name="dtype"/> picks BF16, F16 or F32.
    /// </summary>
    public static void Write(string directory, BaseModelShape model, int rank, IReadOnlyList<string> targetModules, int seed = 0, double? alpha = null,
        bool trained = false, string dtype = "BF16")
    {
        if (!DTypes.Contains(dtype)) throw new ArgumentException($"dtype '{dtype}' is not one of {string.Join(", ", DTypes)}.", nameof(dtype));
        var elementSize = dtype == "F32" ? 4 : 2;
        ArgumentOutOfRangeException.ThrowIfLessThan(rank, 1);
        System.IO.Directory.CreateDirectory(directory);

        var config = new Dictionary<string, object?>
        {
            ["peft_type"] = "LORA",
            ["task_type"] = "CAUSAL_LM",
            ["base_model_name_or_path"] = model.Name,
            ["r"] = rank,
            ["lora_alpha"] = alpha ?? rank * 2,
            ["lora_dropout"] = 0.05,
            ["target_modules"] = targetModules,
            ["bias"] = "none",
            ["use_rslora"] = false,
            ["use_dora"] = false,
        };

        // Tensor layout: PEFT names, A is [r, in], B is [out, r]; BF16 (2 bytes).
        var tensors = new List<(string Name, long[] Shape, bool IsA)>();
        for (var layer = 0; layer < model.Layers; layer++)
        {
            foreach (var module in targetModules)
            {
                if (!model.Modules.TryGetValue(module, out var dims))
                    throw new ArgumentException($"Base model '{model.Name}' has no module '{module}'.", nameof(targetModules));
                var group = module is "gate_proj" or "up_proj" or "down_proj" ? "mlp" : "self_attn";
                var prefix = $"base_model.model.model.layers.{layer}.{group}.{module}";
                tensors.Add(($"{prefix}.lora_A.weight", [rank, dims.In], true));
                tensors.Add(($"{prefix}.lora_B.weight", [dims.Out, rank], false));
            }
        }

        var header = new Dictionary<string, object>
        {
            ["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" },
        };
        long offset = 0;
        foreach (var (name, shape, _) in tensors)
        {
            var bytes = shape[0] * shape[1] * elementSize;
            header[name] = new { dtype, shape, data_offsets = new[] { offset, offset + bytes } };
            offset += bytes;
        }
        var headerJson = JsonSerializer.SerializeToUtf8Bytes(header);
        // Pad the header with spaces to a multiple of 8, as the reference writer does.
        var padded = (headerJson.Length + 7) / 8 * 8;

        var weightsPath = Path.Combine(directory, PeftAdapter.SafetensorsFileName);
        var tmp = weightsPath + ".tmp";
        using (var file = new FileStream(tmp, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 16))
        {
            Span<byte> len = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(len, (ulong)padded);
            file.Write(len);
            file.Write(headerJson);
            for (var i = headerJson.Length; i < padded; i++) file.WriteByte((byte)' ');

            var random = new Random(seed);
            if (trained || dtype != "BF16") WriteValues(file, tensors, random, trained, dtype, elementSize);
            else WriteUntrainedBf16(file, tensors, random);
        }
        File.Move(tmp, weightsPath, overwrite: true);
        File.WriteAllText(Path.Combine(directory, PeftAdapter.ConfigFileName),
            JsonSerializer.Serialize(config, PeftConfig.SerializerOptions), new UTF8Encoding(encoderShouldEmitUTF8Identifier: false));
    }

    /// <summary>Seeded values of each factor's 1/√fan-in (A: in, B: r; B zero unless trained), encoded as <paramref name="dtype"/>.</summary>
    private static void WriteValues(FileStream file, List<(string Name, long[] Shape, bool IsA)> tensors, Random random, bool trained, string dtype, int elementSize)
    {
        foreach (var (_, shape, isA) in tensors)
        {
            // A is [r, in], B is [out, r]: the fan-in is the second dimension of both, which keeps x·A·B of the order of x.
            var bound = trained || isA ? Math.Sqrt(3.0 / shape[1]) : 0;
            var count = shape[0] * shape[1];
            var values = new byte[count * elementSize];
            for (var i = 0; i < count; i++)
                Encode((float)((random.NextDouble() * 2 - 1) * bound), dtype, values.AsSpan((int)(i * elementSize), elementSize));
            file.Write(values);
        }
    }

    /// <summary>A: small random BF16 values; B: zeros (PEFT's initialisation), so the adapter is a no-op.</summary>
    private static void WriteUntrainedBf16(FileStream file, List<(string Name, long[] Shape, bool IsA)> tensors, Random random)
    {
        var buffer = new byte[1 << 16];
        foreach (var (_, shape, isA) in tensors)
        {
            var remaining = shape[0] * shape[1] * 2;
            while (remaining > 0)
            {
                var chunk = (int)Math.Min(buffer.Length, remaining);
                if (isA) random.NextBytes(buffer.AsSpan(0, chunk)); else buffer.AsSpan(0, chunk).Clear();
                if (isA)
                {
                    // Keep BF16 values small and finite: clear exponent high bits of each high byte.
                    for (var b = 1; b < chunk; b += 2) buffer[b] = (byte)(0x3C | (buffer[b] & 0x80));
                }
                file.Write(buffer, 0, chunk);
                remaining -= chunk;
            }
        }
    }

    /// <summary>One little-endian value: BF16 rounds to nearest even, F16 through <see cref="Half"/>.</summary>
    private static void Encode(float value, string dtype, Span<byte> into)
    {
        switch (dtype)
        {
            case "F32": BinaryPrimitives.WriteSingleLittleEndian(into, value); break;
            case "F16": BinaryPrimitives.WriteUInt16LittleEndian(into, BitConverter.HalfToUInt16Bits((Half)value)); break;
            default:
                var bits = BitConverter.SingleToUInt32Bits(value);
                BinaryPrimitives.WriteUInt16LittleEndian(into, (ushort)((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16));
                break;
        }
    }
}
