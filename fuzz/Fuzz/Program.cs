using System.Buffers.Binary;
using System.Text.Json;
using HybridServing.Contracts.Peft;
using HybridServing.Gateway.Forwarding;

// One harness per target; afl-fuzz writes each input to stdin and SharpFuzz's fork server reports an exception that
// escapes the harness as a crash. Without afl-fuzz the program runs the input on stdin once (replaying a crash:
// `dotnet HybridServing.Fuzz.dll request-body < crash`), exiting non-zero when it throws.
// The properties are those of the mutational fuzz tests next to each target's tests.
var targets = new Dictionary<string, Action<byte[]>>(StringComparer.Ordinal)
{
    ["safetensors-header"] = SafetensorsHeaderTarget,
    ["peft-config"] = input =>
    {
        try { PeftConfig.Parse(input); }
        catch (PeftFormatException) { }
    },
    ["request-body"] = RequestBodyTarget,
};

if (args.Length != 1 || !targets.TryGetValue(args[0], out var target))
{
    Console.Error.WriteLine($"usage: HybridServing.Fuzz <target>; targets: {string.Join(", ", targets.Keys)}");
    return 2;
}

SharpFuzz.Fuzzer.OutOfProcess.Run(stream =>
{
    using var buffer = new MemoryStream();
    stream.CopyTo(buffer);
    target(buffer.ToArray());
});
return 0;

// A malformed header may only be a PeftFormatException; an accepted tensor lies inside the data.
static void SafetensorsHeaderTarget(byte[] json)
{
    foreach (var dataLength in new[] { 0L, 68, 131_072, long.MaxValue })
    {
        SafetensorsHeader header;
        try { header = SafetensorsHeader.Parse(json, dataLength); }
        catch (PeftFormatException) { continue; }
        foreach (var t in header.Tensors)
            if (t.Begin < 0 || t.End < t.Begin || t.End > dataLength) throw new InvalidOperationException($"tensor {t.Name} [{t.Begin},{t.End}) outside {dataLength} bytes");
        _ = header.TensorBytes;
    }
    if (json.Length >= 8)
    {
        try { SafetensorsHeader.ReadHeaderLength(json, BinaryPrimitives.ReadInt64LittleEndian(json) & long.MaxValue); }
        catch (PeftFormatException) { }
    }
}

// The gateway's request parsing never throws; what it accepts is one JSON object whose top-level model is the model
// it returned, at the byte range it returned (System.Text.Json's DOM is the reference).
static void RequestBodyTarget(byte[] body)
{
    foreach (var field in new[] { ModelField.Read(body, "messages"), ModelField.Read(body, "prompt", "prompt_embeds"), ModelField.Read(body) })
    {
        if (!field.IsValid)
        {
            if (string.IsNullOrEmpty(field.Error)) throw new InvalidOperationException("rejected without a message");
            continue;
        }
        using var doc = JsonDocument.Parse(body, new JsonDocumentOptions { MaxDepth = 64 });
        if (doc.RootElement.GetProperty("model").GetString() != field.Model) throw new InvalidOperationException("the DOM reads another model");
        var token = body.AsSpan(field.ModelTokenStart, field.ModelTokenLength);
        if (JsonSerializer.Deserialize<string>(token) != field.Model) throw new InvalidOperationException("the model token range is wrong");
        if (string.IsNullOrWhiteSpace(field.Model) || field.Model.Length > ModelField.MaxModelLength) throw new InvalidOperationException("accepted a model it should refuse");
    }
}
