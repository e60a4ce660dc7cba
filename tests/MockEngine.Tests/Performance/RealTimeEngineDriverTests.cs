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
    [Fact]
    public async Task Late_timers_do_not_stretch_model_time_between_back_to_back_steps()
    {
        // Timers round up to whole milliseconds, so even the punctual run fires up to 1 ms late.
        var punctual = await FinishOneRequest(TimeSpan.FromMilliseconds(1));
        // 4 ms of wall time late is 16 ms of model time at 4x: more than two decode steps.
        var late = await FinishOneRequest(TimeSpan.FromMilliseconds(4));
        Assert.Equal(punctual, late);
    }

    /// <summary>Model time from submit to finish of one request when every timer fires <paramref name="lateness"/> late.</summary>
    private static async Task<TimeSpan> FinishOneRequest(TimeSpan lateness)
    {
        var start = new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero);
        var time = new FakeTimeProvider(start);
        const double timeScale = 4;
        using var driver = new RealTimeEngineDriver(new EngineModelOptions(), PerformanceProfile.H100Llama3_8B, time, timeScale);
        await driver.StartAsync(CancellationToken.None);
        var request = new ModelRequest("r", null, 1000, 40);
        driver.Submit(request);
        while (true)
        {
            await WaitFor(() => driver.IsSleeping || request.State == RequestState.Finished);
            if (request.State == RequestState.Finished) break;
            var step = driver.Read(m => m.CurrentStep)!;
            time.Advance(start + (step.End - start) / timeScale - time.GetUtcNow() + lateness);
            await WaitFor(() => request.State == RequestState.Finished || !ReferenceEquals(driver.Read(m => m.CurrentStep), step));
        }
        await driver.StopAsync(CancellationToken.None);
        return request.FinishTime!.Value - request.ArrivalTime;
    }
}
