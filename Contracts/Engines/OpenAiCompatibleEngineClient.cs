using System.Net.Http.Headers;
using System.Net.Http.Json;
using HybridServing.Contracts.Metrics;
using HybridServing.Contracts.OpenAi;

namespace HybridServing.Contracts.Engines;

/// <summary>
/// What vLLM and SGLang share: an OpenAI-compatible server with <c>/v1/models</c>, <c>/health</c> and
/// Prometheus <c>/metrics</c>, reached with an optional bearer key. Engine kinds differ only in their
/// adapter routes, how they word a refusal, and their metric names.
/// </summary>
public abstract class OpenAiCompatibleEngineClient : IEngineClient
{
    private readonly EngineMetricNames _metricNames;

    /// <param name="http">A client whose BaseAddress is the engine's root URL; timeouts are the caller's.</param>
    /// <param name="apiKey">The engine's API key, sent as a bearer token; never logged.</param>
    protected OpenAiCompatibleEngineClient(HttpClient http, string? apiKey, EngineMetricNames metricNames)
    {
        if (http.BaseAddress is null) throw new ArgumentException("HttpClient.BaseAddress must be the engine URL.", nameof(http));
        Http = http;
        _metricNames = metricNames;
        if (!string.IsNullOrEmpty(apiKey))
            Http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
    }

    protected HttpClient Http { get; }

    public abstract string Kind { get; }
    public Uri BaseAddress => Http.BaseAddress!;

    public abstract Task<EngineCallResult> LoadAdapterAsync(string name, string path, bool inPlace, CancellationToken cancellationToken);
    public abstract Task<EngineCallResult> UnloadAdapterAsync(string name, CancellationToken cancellationToken);

    public async Task<IReadOnlyList<ModelCard>> ListModelsAsync(CancellationToken cancellationToken)
    {
        var list = await Http.GetFromJsonAsync<ModelList>("v1/models", OpenAiJson.Options, cancellationToken)
            ?? throw new InvalidDataException("The engine answered /v1/models with null.");
        return list.Data;
    }

    public async Task<bool> IsHealthyAsync(CancellationToken cancellationToken)
    {
        try
        {
            using var response = await Http.GetAsync("health", cancellationToken);
            return response.IsSuccessStatusCode;
        }
        catch (HttpRequestException)
        {
            return false;
        }
    }

    public async Task<EngineLoadSnapshot> GetLoadAsync(CancellationToken cancellationToken)
    {
        var text = await Http.GetStringAsync("metrics", cancellationToken);
        return EngineLoadSnapshot.From(PrometheusText.Parse(text), _metricNames);
    }

    /// <summary>
    /// Posts a JSON body to an adapter route; the engine's answer (status and text) goes to
    /// <paramref name="interpret"/>. An unreachable engine is status 0, type <c>ConnectionFailed</c>.
    /// </summary>
    protected async Task<EngineCallResult> PostAsync(string path, object body, Func<int, string, EngineCallResult> interpret, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await Http.PostAsJsonAsync(path, body, cancellationToken);
        }
        catch (HttpRequestException e)
        {
            return new EngineCallResult(false, 0, "ConnectionFailed", e.Message);
        }
        using (response)
        {
            var text = await response.Content.ReadAsStringAsync(cancellationToken);
            return interpret((int)response.StatusCode, text);
        }
    }
}
