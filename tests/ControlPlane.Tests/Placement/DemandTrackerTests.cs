using HybridServing.Contracts.ControlPlane;
using HybridServing.ControlPlane.Placement;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.ControlPlane.Tests.Placement;

public sealed class DemandTrackerTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));

    private DemandTracker Tracker(double ratePerReplica = 5) => new(_time, TimeSpan.FromSeconds(60), ratePerReplica);

    private static DemandReport Report(string gateway, params (string Name, long Requests)[] samples)
    {
        var report = new DemandReport { Gateway = gateway, WindowSeconds = 5 };
        foreach (var (name, requests) in samples) report.Adapters.Add(new AdapterDemandSample { Name = name, Requests = requests });
        return report;
    }

    [Fact]
    public void Rate_is_requests_in_the_window_summed_over_gateways_divided_by_the_window()
    {
        var tracker = Tracker();
        tracker.Record(Report("gw-a", ("hot", 300), ("cold", 6)));
        _time.Advance(TimeSpan.FromSeconds(5));
        tracker.Record(Report("gw-b", ("hot", 240)));
        _time.Advance(TimeSpan.FromSeconds(5));
        tracker.Record(Report("gw-a", ("hot", 60)));

        var rates = tracker.Rates();
        Assert.Equal(10.0, rates["hot"], 9);   // (300 + 240 + 60) / 60 s
        Assert.Equal(0.1, rates["cold"], 9);   // 6 / 60 s
        Assert.False(rates.ContainsKey("never"));
    }

    [Fact]
    public void Samples_older_than_the_window_expire()
    {
        var tracker = Tracker();
        tracker.Record(Report("gw-a", ("hot", 300)));
        _time.Advance(TimeSpan.FromSeconds(30));
        tracker.Record(Report("gw-b", ("hot", 120)));
        _time.Advance(TimeSpan.FromSeconds(30)); // the first sample is now exactly one window old
        Assert.Equal(2.0, tracker.Rates()["hot"], 9);
        _time.Advance(TimeSpan.FromSeconds(30));
        Assert.Empty(tracker.Rates()); // unknown again, not a rate of zero
    }

    [Fact]
    public void Record_reports_a_change_only_when_the_rate_crosses_a_replica_boundary()
    {
        var tracker = Tracker(ratePerReplica: 5);
        Assert.True(tracker.Record(Report("gw-a", ("hot", 60))));    // unknown -> 1 req/s: 1 replica
        Assert.False(tracker.Record(Report("gw-a", ("hot", 120))));  // 3 req/s: still 1 replica
        Assert.True(tracker.Record(Report("gw-b", ("hot", 180))));   // 6 req/s: 2 replicas
        Assert.False(tracker.Record(Report("gw-b", ("hot", 6))));    // 6.1 req/s: still 2
        Assert.False(tracker.Record(Report("gw-a")));                // empty report, nothing moved
        _time.Advance(TimeSpan.FromSeconds(61));
        Assert.True(tracker.Record(Report("gw-a")));                 // everything expired: back to unknown
    }

    [Fact]
    public void Zero_counts_are_not_samples()
    {
        var tracker = Tracker();
        Assert.False(tracker.Record(Report("gw-a", ("idle", 0))));
        Assert.Empty(tracker.Rates());
    }
}
