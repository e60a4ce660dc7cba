using System.Text.Json;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Contracts.Engines;

/// <summary>
/// SGLang's adapter API: <c>POST /load_lora_adapter</c>
/// and <c>/unload_lora_adapter</c> answer <c>{success, error_message, loaded_adapters}</c> with 200, or 400.
/// SGLang has no in-place reload, so a reload is an unload followed by a load.
/// </summary>
public sealed class SglangEngineClient(HttpClient http, string? apiKey = null)
    : OpenAiCompatibleEngineClient(http, apiKey, EngineMetricNames.SgLang), IEngineClient // re-implemented: its pinned load replaces the interface default
{
    public override string Kind => "sglang";

    public override Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken) =>
        LoadAdapterAsync(name, path, inPlace, pinned: false, cancellationToken);

    /// <summary>Pinned adapters are never evicted from SGLang's GPU pool.</summary>
    public async Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, bool pinned, CancellationToken cancellationToken)
    {
        if (inPlace)
        {
            var unload = await UnloadAdapterAsync(name, cancellationToken);
            if (!unload.Success && unload.StatusCode is 0 or >= 500) return unload;
        }
        return await PostAsync("load_lora_adapter", new { lora_name = name, lora_path = path, pinned }, Interpret, cancellationToken);
    }

    public override Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken) =>
        PostAsync("unload_lora_adapter", new { lora_name = name }, Interpret, cancellationToken);

    private static EngineCallResult Interpret(int status, string text)
    {
        var (success, message) = ParseResult(text);
        if (status is >= 200 and < 300 && success != false)
            return new EngineCallResult(true, status, null, message ?? text);
        // SGLang reports some refusals as 200 with success=false; report them as 400 like its other refusals.
        var code = status is >= 200 and < 300 ? 400 : status;
        return new EngineCallResult(false, code, "SglangError", message ?? VllmEngineClient.ParseError(text).Message);
    }

    internal static (bool? Success, string? Message) ParseResult(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            if (doc.RootElement.ValueKind != JsonValueKind.Object) return (null, null);
            bool? success = doc.RootElement.TryGetProperty("success", out var s) && s.ValueKind is JsonValueKind.True or JsonValueKind.False
                ? s.GetBoolean() : null;
            var message = doc.RootElement.TryGetProperty("error_message", out var m) && m.ValueKind == JsonValueKind.String
                && m.GetString() is { Length: > 0 } msg ? msg : null;
            return (success, message);
        }
        catch (JsonException)
        {
            return (null, null);
        }
    }
}
