using HybridServing.Contracts.Engines;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Engines;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.EngineSidecar.Tests.Engines;

/// <summary>Engine-call timeouts and backoff driven by a fake clock: no test waits for real seconds.</summary>
public sealed class FakeClockTimeoutTests
{
    [Fact]
    public async Task A_hanging_load_times_out_when_the_clock_says_so_and_backs_off_between_attempts()
    {
        await using var engine = await FakeEngine.StartAsync();
        engine.HangLoads = true;
        var time = new FakeTimeProvider();
        var client = new ResilientEngineClient(new VllmEngineClient(new HttpClient { BaseAddress = engine.BaseUrl }),
            new EngineCallOptions { LoadTimeoutSeconds = 120, MaxAttempts = 2, RetryBaseDelaySeconds = 1 }, time, NullLogger<ResilientEngineClient>.Instance);

        var call = client.LoadAsync("slow", "/x", false, CancellationToken.None);
        await WaitUntilAsync(() => engine.LoadCalls("slow") == 1);
        time.Advance(TimeSpan.FromSeconds(119));
        await Task.Delay(50);
        Assert.False(call.IsCompleted, "not before the load timeout");
        time.Advance(TimeSpan.FromSeconds(1));
        // First attempt timed out; the retry waits ~1 s (jittered 0.8..1.2) of fake time before it starts.
        await Task.Delay(50);
        Assert.Equal(1, engine.LoadCalls("slow"));
        // Step the clock in small increments: the backoff timer is registered asynchronously after the timeout fired.
        for (var i = 0; i < 100 && engine.LoadCalls("slow") < 2; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(100));
            await Task.Delay(10);
        }
        await WaitUntilAsync(() => engine.LoadCalls("slow") == 2);
        time.Advance(TimeSpan.FromSeconds(120));
        var result = await call.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal("Timeout", result.ErrorType);
        Assert.Contains("within 120 s", result.Message);
    }

    private static async Task WaitUntilAsync(Func<bool> condition)
    {
        for (var i = 0; i < 200 && !condition(); i++) await Task.Delay(10);
        Assert.True(condition());
    }
}
