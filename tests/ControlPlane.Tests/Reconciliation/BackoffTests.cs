using HybridServing.ControlPlane.Engines;
using HybridServing.ControlPlane.Reconciliation;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.ControlPlane.Tests.Reconciliation;

public sealed class BackoffTests
{
    [Theory]
    [InlineData(1, 2)]
    [InlineData(2, 4)]
    [InlineData(3, 8)]
    [InlineData(7, 60)]
    [InlineData(1000, 60)]
    public void Delay_doubles_and_is_bounded(int attempt, int seconds) =>
        Assert.Equal(TimeSpan.FromSeconds(seconds), Backoff.Delay(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(60), attempt));

    [Fact]
    public void Failures_count_only_for_open_attempts_and_exclude_the_engine_until_due()
    {
        var clock = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var backoff = new AdapterBackoff(TimeSpan.FromSeconds(2), TimeSpan.FromSeconds(60));

        Assert.False(backoff.Failed("a", "e1", "EngineRejected", "x", clock.GetUtcNow())); // nothing was attempted
        backoff.AttemptStarted("a", "e1");
        Assert.True(backoff.Failed("a", "e1", "EngineRejected", "x", clock.GetUtcNow()));
        Assert.False(backoff.Failed("a", "e1", "EngineRejected", "x", clock.GetUtcNow())); // same report again: not a new failure
        Assert.Equal(["e1"], backoff.Excluded("a", clock.GetUtcNow())!);
        Assert.Null(backoff.Excluded("b", clock.GetUtcNow()));
        Assert.Equal(clock.GetUtcNow().AddSeconds(2), backoff.NextDue(clock.GetUtcNow()));

        clock.Advance(TimeSpan.FromSeconds(2));
        Assert.Null(backoff.Excluded("a", clock.GetUtcNow()));
        backoff.AttemptStarted("a", "e1");
        backoff.Failed("a", "e1", "EngineRejected", "x", clock.GetUtcNow());
        var entry = Assert.Single(backoff.For("a"));
        Assert.Equal(2, entry.Failures);
        Assert.Equal(clock.GetUtcNow().AddSeconds(4), entry.NextRetry);

        backoff.Succeeded("a", "e1");
        Assert.Empty(backoff.For("a"));
    }

    [Fact]
    public void Retain_forgets_undeclared_adapters_and_unknown_engines()
    {
        var backoff = new AdapterBackoff(TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(4));
        foreach (var (a, e) in new[] { ("a", "e1"), ("b", "e1"), ("a", "e2") })
        {
            backoff.AttemptStarted(a, e);
            backoff.Failed(a, e, "r", "m", DateTimeOffset.UnixEpoch);
        }
        backoff.Retain(new HashSet<string> { "a" }, new HashSet<string> { "e1" });
        Assert.Equal([("a", "e1")], backoff.For("a").Select(x => (x.Adapter, x.Engine)));
        Assert.Empty(backoff.For("b"));
    }
}
