using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.OpenAi;

namespace HybridServing.Contracts.Engines;

/// <summary>vLLM's OpenAI-compatible server (and the MockEngine), per ../shared/protocol/vllm-engine-api.md.</summary>
public sealed class VllmEngineClient : IEngineClient
{
    private readonly HttpClient _http;

    /// <param name="http">A client whose BaseAddress is the engine's root URL; timeouts are the caller's.</param>
    /// <param name="apiKey">The engine's <c>--api-key</c>, sent as a bearer token; never logged.</param>
    public VllmEngineClient(HttpClient http, string? apiKey = null)
    {
        _http = http;
        if (http.BaseAddress is null) throw new ArgumentException("HttpClient.BaseAddress must be the engine URL.", nameof(http));
        if (!string.IsNullOrEmpty(apiKey))
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public string Kind => "vllm";
    public Uri BaseAddress => _http.BaseAddress!;

    public Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken) =>
        PostAsync("v1/load_lora_adapter", new { lora_name = name, lora_path = path, load_inplace = inPlace }, cancellationToken);

    public Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken) =>
        PostAsync("v1/unload_lora_adapter", new { lora_name = name }, cancellationToken);

    public async Task<IReadOnlyList<ModelCard>> ListModelsAsync(CancellationToken cancellationToken)
    {
        var list = await _http.GetFromJsonAsync<ModelList>("v1/models", OpenAiJson.Options, cancellationToken)
            ?? throw new InvalidDataException("The engine answered /v1/models with null.");
        return list.Data;
    }

    public async Task<bool> IsHealthyAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var response = await _http.GetAsync("health", cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    public async Task<EngineLoadSnapshot> GetLoadAsync(CancellationToken cancellationToken)
    {
        var text = await _http.GetStringAsync("metrics", cancellationToken);
        return EngineLoadSnapshot.From(PrometheusText.Parse(text), EngineMetricNames.Vllm);
    }

    private async Task<EngineCallResult> PostAsync(string path, object body, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.PostAsJsonAsync(path, body, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            return new EngineCallResult(false, 0, "ConnectionFailed", e.Message);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            if (response.IsSuccessStatusCode)
                return new EngineCallResult(true, (int)response.StatusCode, null, text);
            var (type, message) = ParseError(text);
            return new EngineCallResult(false, (int)response.StatusCode, type, message);
        }
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
