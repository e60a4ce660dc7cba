using System.Text.Json;
using HybridServing.Contracts.Metrics;

namespace HybridServing.Contracts.Engines;

/// <summary>vLLM's OpenAI-compatible server (and the MockEngine): the routes, bodies and errors the MockEngine's conformance tests pin.</summary>
public sealed class VllmEngineClient(HttpClient http, string? apiKey = null)
    : OpenAiCompatibleEngineClient(http, apiKey, EngineMetricNames.Vllm)
{
    public override string Kind => "vllm";

    public override Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken) =>
        PostAsync("v1/load_lora_adapter", new { lora_name = name, lora_path = path, load_inplace = inPlace }, Interpret, cancellationToken);

    public override Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken) =>
        PostAsync("v1/unload_lora_adapter", new { lora_name = name }, Interpret, cancellationToken);

    private static EngineCallResult Interpret(int status, string text)
    {
        if (status is >= 200 and < 300) return new EngineCallResult(true, status, null, text);
        var (type, message) = ParseError(text);
        return new EngineCallResult(false, status, type, message);
    }

    /// <summary>Reads vLLM's error envelope, or <c>{"detail":...}</c> / <c>{"error":"..."}</c>, else the raw text.</summary>
    internal static (string? Type, string Message) ParseError(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            var root = doc.RootElement;
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("error", out var error))
            {
                if (error.ValueKind == JsonValueKind.Object)
                {
                    var message = error.TryGetProperty("message", out var m) ? m.ToString() : error.GetRawText();
                    var type = error.TryGetProperty("type", out var t) ? t.ToString() : null;
                    return (type, message);
                }
                return (null, error.ToString());
            }
            if (root.ValueKind == JsonValueKind.Object && root.TryGetProperty("detail", out var detail))
                return (null, detail.ToString());
        }
        catch (JsonException)
        {
        }
        return (null, text.Length > 500 ? text[..500] : text);
    }
}
