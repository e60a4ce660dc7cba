using HybridServing.MockEngine.Performance;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.MockEngine.Tests.Performance;

public sealed class RealTimeEngineDriverTests
{
    private static async Task WaitFor(Func<bool> condition)
    {
        // The driver loop runs on the thread pool; this waits for it to reach its next await, not for time to pass.
        for (var i = 0; i < 2000 && !condition(); i++) await Task.Delay(2);
        Assert.True(condition(), "condition not reached");
    }

    [Theory]
    [InlineData(1.0)]
    [InlineData(10.0)]
    [InlineData(0.5)]
    public async Task The_first_token_comes_out_when_the_scaled_clock_reaches_the_prefill_end(double timeScale)
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var time = new FakeTimeProvider(start);
        using var driver = new RealTimeEngineDriver(new EngineModelOptions(), PerformanceProfile.H100Llama3_8B, time, timeScale);
        await driver.StartAsync(CancellationToken.None);
        var tokens = 0;
        // A 4,000-token prompt: ≈ 120 ms of prefill on the default profile.
        var request = new ModelRequest("r", null, 4000, 2) { TokenEmitted = (_, _) => Interlocked.Increment(ref tokens) };
        driver.Submit(request);
        await WaitFor(() => driver.IsSleeping);
        var prefill = driver.Read(m => m.CurrentStep)!;
        Assert.InRange(prefill.Duration.TotalMilliseconds, 100, 160);

        var wallEnd = start + (prefill.End - start) / timeScale;
        time.Advance(wallEnd - start - TimeSpan.FromMilliseconds(0.5));
        await Task.Delay(50);
        Assert.Equal(0, Volatile.Read(ref tokens));

        // Timers fire on whole milliseconds, rounded up: the token is out within 1 ms of wall time.
        time.Advance(TimeSpan.FromMilliseconds(1.5));
        await WaitFor(() => Volatile.Read(ref tokens) >= 1);
        Assert.Equal(prefill.End, request.FirstTokenTime);

        // The decode step is shorter than a millisecond of wall time at 10×: it still completes.
        for (var i = 0; i < 100 && request.State != RequestState.Finished; i++)
        {
            time.Advance(TimeSpan.FromMilliseconds(1));
            await Task.Delay(2);
        }
        Assert.Equal(RequestState.Finished, request.State);
        await driver.StopAsync(CancellationToken.None);
    }
}
