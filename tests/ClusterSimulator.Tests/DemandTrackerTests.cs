using HybridServing.ClusterSimulator.Policies;

namespace HybridServing.ClusterSimulator.Tests;

public sealed class DemandTrackerTests
{
    [Fact]
    public void Rates_cover_the_window_and_forget_older_requests()
    {
        var tracker = new DemandTracker(adapters: 3, windowSeconds: 10);
        // Time only moves forward, as in the simulation: adapter 0 at 10/s throughout, adapter 1 at 2/s, then silent.
        for (var i = 0; i < 200; i++)
        {
            var t = i * 0.1;
            tracker.Record(0, t);
            if (i % 5 == 0 && t < 5) tracker.Record(1, t);
        }
        var rates = tracker.Rates(20);
        Assert.InRange(rates[0], 9.5, 10.5);
        Assert.Equal(0, rates[1]);
        Assert.Equal(0, rates[2]);
    }

    [Fact]
    public void Early_rates_divide_by_the_time_observed()
    {
        var tracker = new DemandTracker(adapters: 1, windowSeconds: 10);
        for (var t = 0.0; t < 2; t += 0.25) tracker.Record(0, t);
        Assert.InRange(tracker.Rates(2)[0], 3.5, 4.5);
    }
}
