using System.Diagnostics;

namespace HybridServing.MockEngine.Serving;

/// <summary>
/// vLLM's request span as its <c>--otlp-traces-endpoint</c> exports it: one <c>llm_request</c> span per
/// request, continuing the caller's trace (<c>traceparent</c>), with vLLM's <c>gen_ai.*</c> attribute
/// names (request parameters, token usage, and the latency breakdown in seconds). Metadata only: no
/// prompt or completion text.
/// </summary>
internal sealed class LlmRequestSpan : IDisposable
{
    public const string Name = "llm_request";

    private readonly Activity? _activity;
    private readonly long _arrival = Stopwatch.GetTimestamp();
    private long _firstToken;

    public LlmRequestSpan()
    {
        _activity = MockEngineTelemetry.Source.StartActivity(Name, ActivityKind.Server);
    }

    public void Request(string requestId, string model, int promptTokens, int? maxTokens, double? temperature, double? topP)
    {
        if (_activity is null) return;
        _activity.SetTag("gen_ai.request.id", requestId);
        _activity.SetTag("gen_ai.response.model", model);
        _activity.SetTag("gen_ai.request.n", 1);
        _activity.SetTag("gen_ai.usage.num_sequences", 1);
        _activity.SetTag("gen_ai.usage.prompt_tokens", promptTokens);
        if (maxTokens is { } m) _activity.SetTag("gen_ai.request.max_tokens", m);
        if (temperature is { } t) _activity.SetTag("gen_ai.request.temperature", t);
        if (topP is { } p) _activity.SetTag("gen_ai.request.top_p", p);
    }

    /// <summary>Called for every token sent; the first one fixes the time to first token.</summary>
    public void TokenSent()
    {
        if (_firstToken == 0) _firstToken = Stopwatch.GetTimestamp();
    }

    public void Finished(int completionTokens)
    {
        if (_activity is null) return;
        var end = Stopwatch.GetTimestamp();
        _activity.SetTag("gen_ai.usage.completion_tokens", completionTokens);
        _activity.SetTag("gen_ai.latency.e2e", Stopwatch.GetElapsedTime(_arrival, end).TotalSeconds);
        if (_firstToken != 0)
        {
            _activity.SetTag("gen_ai.latency.time_to_first_token", Stopwatch.GetElapsedTime(_arrival, _firstToken).TotalSeconds);
            _activity.SetTag("gen_ai.latency.time_in_model_decode", Stopwatch.GetElapsedTime(_firstToken, end).TotalSeconds);
        }
    }

    public void Failed(int status) => _activity?.SetStatus(ActivityStatusCode.Error, $"HTTP {status}");

    public void Dispose() => _activity?.Dispose();
}
