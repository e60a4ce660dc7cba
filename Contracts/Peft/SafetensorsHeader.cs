using System.Buffers.Binary;
using System.Text.Json;

namespace HybridServing.Contracts.Peft;

/// <summary>One tensor entry of a safetensors header.</summary>
public sealed record TensorInfo(string Name, string DType, long[] Shape, long Begin, long End)
{
    public long ByteLength => End - Begin;
}

/// <summary>
/// The JSON header of a <c>.safetensors</c> file: an 8-byte little-endian length, then that many
/// bytes of JSON describing every tensor, then the data. Everything is bounds-checked so that a
/// hostile file cannot make us allocate or read beyond what the file holds.
/// </summary>
public sealed class SafetensorsHeader
{
    /// <summary>The reference implementation refuses headers above 100 MB; so do we.</summary>
    public const long MaxHeaderBytes = 100_000_000;

    public required IReadOnlyList<TensorInfo> Tensors { get; init; }
    public required IReadOnlyDictionary<string, string> Metadata { get; init; }
    public required long HeaderLength { get; init; }

    /// <summary>Sum of all tensors' bytes: the adapter's size.</summary>
    public long TensorBytes => Tensors.Sum(t => t.ByteLength);

    private static readonly Dictionary<string, int> DTypeSizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1, ["U8"] = 1, ["I8"] = 1, ["F8_E5M2"] = 1, ["F8_E4M3"] = 1,
        ["I16"] = 2, ["U16"] = 2, ["F16"] = 2, ["BF16"] = 2,
        ["I32"] = 4, ["U32"] = 4, ["F32"] = 4,
        ["I64"] = 8, ["U64"] = 8, ["F64"] = 8,
    };

    /// <summary>Reads the header length from the first 8 bytes of the file and checks it against the file size.</summary>
    public static long ReadHeaderLength(ReadOnlySpan<byte> first8, long fileLength)
    {
        if (first8.Length < 8 || fileLength < 8)
            throw new PeftFormatException("safetensors file is truncated: shorter than its 8-byte header length.");
        var n = BinaryPrimitives.ReadUInt64LittleEndian(first8);
        if (n == 0 || n > MaxHeaderBytes)
            throw new PeftFormatException($"safetensors header length {n} is outside 1..{MaxHeaderBytes}.");
        if ((long)n > fileLength - 8)
            throw new PeftFormatException($"safetensors header length {n} exceeds the file size {fileLength}.");
        return (long)n;
    }

    /// <summary>Parses the header JSON; <paramref name="dataLength"/> is the file size minus 8 minus the header.</summary>
    public static SafetensorsHeader Parse(ReadOnlySpan<byte> headerJson, long dataLength)
    {
        var tensors = new List<TensorInfo>();
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        try
        {
            var reader = new Utf8JsonReader(headerJson, new JsonReaderOptions { MaxDepth = 8 });
            using var doc = JsonDocument.ParseValue(ref reader);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
                throw new PeftFormatException("safetensors header is not a JSON object.");
            foreach (var prop in doc.RootElement.EnumerateObject())
            {
                if (prop.Name == "__metadata__")
                {
                    if (prop.Value.ValueKind != JsonValueKind.Object)
                        throw new PeftFormatException("safetensors __metadata__ is not an object.");
                    foreach (var m in prop.Value.EnumerateObject())
                        metadata[m.Name] = m.Value.ValueKind == JsonValueKind.String ? m.Value.GetString()! : m.Value.GetRawText();
                    continue;
                }
                tensors.Add(ParseTensor(prop.Name, prop.Value, dataLength));
            }
        }
        catch (JsonException e)
        {
            throw new PeftFormatException($"safetensors header is not valid JSON: {e.Message}");
        }
        catch (OverflowException)
        {
            throw new PeftFormatException("safetensors header declares a tensor too large to exist.");
        }
        catch (InvalidOperationException)
        {
            // Reading a name or string that is not valid UTF-8 (or holds a lone surrogate escape) as text.
            throw new PeftFormatException("safetensors header has a name or string that is not valid Unicode.");
        }

        // Tensors must not overlap; sort by offset and check neighbours.
        var ordered = tensors.OrderBy(t => t.Begin).ToArray();
        for (var i = 1; i < ordered.Length; i++)
        {
            if (ordered[i].Begin < ordered[i - 1].End)
                throw new PeftFormatException($"safetensors tensors '{ordered[i - 1].Name}' and '{ordered[i].Name}' overlap.");
        }
        return new SafetensorsHeader { Tensors = tensors, Metadata = metadata, HeaderLength = headerJson.Length };
    }

    private static TensorInfo ParseTensor(string name, JsonElement e, long dataLength)
    {
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out var dtypeEl) || dtypeEl.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out var shapeEl) || shapeEl.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out var offEl) || offEl.ValueKind != JsonValueKind.Array || offEl.GetArrayLength() != 2)
            throw new PeftFormatException($"safetensors tensor '{name}' needs dtype, shape and data_offsets [begin, end].");

        var dtype = dtypeEl.GetString()!;
        if (!DTypeSizes.TryGetValue(dtype, out var elementSize))
            throw new PeftFormatException($"safetensors tensor '{name}' has unknown dtype '{dtype}'.");

        var shape = new long[shapeEl.GetArrayLength()];
        long elements = 1;
        var i = 0;
        foreach (var d in shapeEl.EnumerateArray())
        {
            if (d.ValueKind != JsonValueKind.Number || !d.TryGetInt64(out var dim) || dim < 0)
                throw new PeftFormatException($"safetensors tensor '{name}' has an invalid shape.");
            shape[i++] = dim;
            elements = checked(elements * dim);
        }

        if (offEl[0].ValueKind != JsonValueKind.Number || offEl[1].ValueKind != JsonValueKind.Number
            || !offEl[0].TryGetInt64(out var begin) || !offEl[1].TryGetInt64(out var end) || begin < 0 || end < begin)
            throw new PeftFormatException($"safetensors tensor '{name}' has invalid data_offsets.");
        if (end > dataLength)
            throw new PeftFormatException($"safetensors tensor '{name}' ends at {end}, beyond the {dataLength} data bytes in the file.");
        if (checked(elements * elementSize) != end - begin)
            throw new PeftFormatException($"safetensors tensor '{name}' has shape [{string.Join(", ", shape)}] of {dtype} ({elements * elementSize} bytes) but data_offsets span {end - begin} bytes.");
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /// <summary>Reads and validates the header of a local file without reading the tensor data.</summary>
    public static SafetensorsHeader ReadFile(string path)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1, FileOptions.None);
        var fileLength = stream.Length;
        Span<byte> first8 = stackalloc byte[8];
        var read = stream.ReadAtLeast(first8, 8, throwOnEndOfStream: false);
        var n = ReadHeaderLength(first8[..read], fileLength);
        var json = new byte[n];
        stream.ReadExactly(json);
        return Parse(json, fileLength - 8 - n);
    }
}
