using HybridServing.Gateway.Health;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Gateway.Tests.Health;

public sealed class PassiveHealthTests
{
    private static (PassiveHealth, FakeTimeProvider) Create(int threshold = 2)
    {
        var time = new FakeTimeProvider(DateTimeOffset.Parse("2026-01-01T00:00:00Z"));
        var options = Options.Create(new GatewayOptions { PassiveHealth = { FailureThreshold = threshold, EjectionDuration = TimeSpan.FromSeconds(10), MaxRetryAfter = TimeSpan.FromSeconds(30) } });
        return (new PassiveHealth(options, time, NullLogger<PassiveHealth>.Instance), time);
    }

    [Fact]
    public void Ejects_after_consecutive_connect_failures_until_the_duration_passes()
    {
        var (health, time) = Create(threshold: 2);
        health.ReportFailure("e1");
        Assert.False(health.IsEjected("e1"));
        health.ReportFailure("e1");
        Assert.True(health.IsEjected("e1"));
        Assert.False(health.IsEjected("e2"));
        time.Advance(TimeSpan.FromSeconds(9));
        Assert.True(health.IsEjected("e1"));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(health.IsEjected("e1"));
    }

    [Fact]
    public void A_success_resets_the_failure_count()
    {
        var (health, _) = Create(threshold: 2);
        health.ReportFailure("e1");
        health.ReportSuccess("e1");
        health.ReportFailure("e1");
        Assert.False(health.IsEjected("e1"));
    }

    [Fact]
    public void A_success_brings_a_failed_engine_back_but_not_one_that_asked_to_wait()
    {
        var (health, time) = Create(threshold: 1);
        health.ReportFailure("e1");
        Assert.True(health.IsEjected("e1"));
        health.ReportSuccess("e1");
        Assert.False(health.IsEjected("e1"));

        health.ReportRetryAfter("e2", TimeSpan.FromSeconds(20));
        health.ReportSuccess("e2");
        Assert.True(health.IsEjected("e2"));
        time.Advance(TimeSpan.FromSeconds(21));
        Assert.False(health.IsEjected("e2"));
    }

    [Fact]
    public void Honours_retry_after_capped_and_never_shortens_an_ejection()
    {
        var (health, time) = Create();
        health.ReportRetryAfter("e1", TimeSpan.FromMinutes(10));
        time.Advance(TimeSpan.FromSeconds(29));
        Assert.True(health.IsEjected("e1"));
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(health.IsEjected("e1"));

        health.ReportRetryAfter("e1", TimeSpan.FromSeconds(20));
        health.ReportRetryAfter("e1", TimeSpan.FromSeconds(1));
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(health.IsEjected("e1"));
    }
}
