using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.OpenAi;

namespace HybridServing.Contracts.Engines;

/// <summary>
/// SGLang's adapter API (../shared/protocol/vllm-engine-api.md, "SGLang"): <c>POST /load_lora_adapter</c>
/// and <c>/unload_lora_adapter</c> answer <c>{success, error_message, loaded_adapters}</c> with 200, or 400.
/// SGLang has no in-place reload, so a reload is an unload followed by a load.
/// </summary>
public sealed class SglangEngineClient : IEngineClient
{
    private readonly HttpClient _http;

    /// <param name="http">A client whose BaseAddress is the engine's root URL; timeouts are the caller's.</param>
    /// <param name="apiKey">The engine's API key, sent as a bearer token; never logged.</param>
    public SglangEngineClient(HttpClient http, string? apiKey = null)
    {
        _http = http;
        if (http.BaseAddress is null) throw new ArgumentException("HttpClient.BaseAddress must be the engine URL.", nameof(http));
        if (!string.IsNullOrEmpty(apiKey))
            _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    public string Kind => "sglang";
    public Uri BaseAddress => _http.BaseAddress!;

    public Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken) =>
        LoadAdapterAsync(name, path, inPlace, pinned: false, cancellationToken);

    /// <summary>Pinned adapters are never evicted from SGLang's GPU pool.</summary>
    public async Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, bool pinned, CancellationToken cancellationToken)
    {
        if (inPlace)
        {
            var unload = await UnloadAdapterAsync(name, cancellationToken);
            if (!unload.Success && unload.StatusCode is 0 or >= 500) return unload;
        }
        return await PostAsync("load_lora_adapter", new { lora_name = name, lora_path = path, pinned }, cancellationToken);
    }

    public Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken) =>
        PostAsync("unload_lora_adapter", new { lora_name = name }, cancellationToken);

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
        return EngineLoadSnapshot.From(PrometheusText.Parse(text), EngineMetricNames.SgLang);
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
            var (success, message) = ParseResult(text);
            if (response.IsSuccessStatusCode && success != false)
                return new EngineCallResult(true, (int)response.StatusCode, null, message ?? text);
            // SGLang reports some refusals as 200 with success=false; report them as 400 like its other refusals.
            var status = response.IsSuccessStatusCode ? 400 : (int)response.StatusCode;
            return new EngineCallResult(false, status, "SglangError", message ?? VllmEngineClient.ParseError(text).Message);
        }
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
