using HybridServing.MockEngine.Performance;
using HybridServing.MockEngine.Serving;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace HybridServing.MockEngine.Sleep;

/// <summary>
/// vLLM's sleep routes (<c>POST /sleep?level=1|2</c>, <c>POST /wake_up[?tags=weights&amp;tags=kv_cache]</c>,
/// <c>GET /is_sleeping</c>), which vLLM only mounts with <c>VLLM_SERVER_DEV_MODE=1</c>, and the 503
/// vLLM answers on model routes while the engine sleeps.
/// </summary>
internal sealed partial class SleepEndpoints(
    MockEngineOptions options,
    EngineSleepState state,
    RealTimeEngineDriver driver,
    TimeProvider time,
    ILogger<SleepEndpoints> logger)
{
    /// <summary>Routes that need the model's weights; vLLM answers them 503 while the engine sleeps.</summary>
    public static readonly IReadOnlyList<string> ProtectedPaths = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/invocations"];

    private static readonly TimeSpan DrainPoll = TimeSpan.FromMilliseconds(5);

    public static IResult Sleeping() =>
        EngineErrors.OpenAi(503, "ServiceUnavailableError", "The engine is sleeping (sleep mode); wake it with POST /wake_up.");

    public async Task<IResult> SleepAsync(HttpContext context)
    {
        if (NotEnabled() is { } refused) return refused;
        var raw = context.Request.Query["level"].ToString();
        var level = raw.Length == 0 ? SleepLevel.WeightsOffloaded
            : raw == "1" ? SleepLevel.WeightsOffloaded
            : raw == "2" ? SleepLevel.DiscardAll
            : (SleepLevel?)null;
        if (level is null) return EngineErrors.Validation($"level: '{raw}' is not a sleep level; use 1 (offload weights to host memory) or 2 (discard weights).");
        if (!state.Sleep(level.Value))
        {
            LogAlreadySleeping(logger);
            return Results.Ok();
        }
        // New requests are refused from now on; those already admitted finish before the memory goes
        // (vLLM leaves this to the caller, the mock takes the safe reading), so nothing is lost.
        while (state.InFlight > 0)
            await Task.Delay(DrainPoll, time, context.RequestAborted);
        LogSlept(logger, (int)level.Value);
        return Results.Ok();
    }

    public async Task<IResult> WakeUpAsync(HttpContext context)
    {
        if (NotEnabled() is { } refused) return refused;
        var tags = context.Request.Query["tags"].Where(t => !string.IsNullOrEmpty(t)).Select(t => t!).ToArray();
        var unknown = tags.FirstOrDefault(t => !EngineSleepState.Tags.Contains(t));
        if (unknown is not null)
            return EngineErrors.Validation($"tags: '{unknown}' is not a memory tag; use {string.Join(" or ", EngineSleepState.Tags)}.");
        var seconds = state.WakeCostSeconds(tags);
        if (seconds > 0 && !options.ZeroLatency)
            await Task.Delay(driver.ToWallClock(TimeSpan.FromSeconds(seconds)), time, context.RequestAborted);
        state.Wake(tags);
        LogWoke(logger, tags.Length == 0 ? "all" : string.Join(",", tags), seconds);
        return Results.Ok();
    }

    public IResult IsSleeping() => Results.Json(new { is_sleeping = state.IsSleeping });

    // vLLM fails deep in its worker when sleep is asked of an engine started without the flag; the mock says why.
    private IResult? NotEnabled() => options.EnableSleepMode ? null
        : EngineErrors.Validation("Sleep mode is not enabled; start the engine with --enable-sleep-mode.");

    [LoggerMessage(EventId = 300, Level = LogLevel.Warning, Message = "Executor is already sleeping.")]
    private static partial void LogAlreadySleeping(ILogger logger);

    [LoggerMessage(EventId = 301, Level = LogLevel.Information, Message = "Engine asleep (level {Level}); KV cache freed")]
    private static partial void LogSlept(ILogger logger, int level);

    [LoggerMessage(EventId = 302, Level = LogLevel.Information, Message = "Engine woke tags {Tags} in {Seconds:F3} model seconds")]
    private static partial void LogWoke(ILogger logger, string tags, double seconds);
}
