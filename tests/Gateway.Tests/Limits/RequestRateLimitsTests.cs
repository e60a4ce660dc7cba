using HybridServing.Gateway.Limits;
using HybridServing.Gateway.Tenancy;
using Microsoft.Extensions.Time.Testing;

namespace HybridServing.Gateway.Tests.Limits;

public sealed class RequestRateLimitsTests
{
    private static RequestRateLimits Create(RateLimitOptions limits) =>
        new(Microsoft.Extensions.Options.Options.Create(new GatewayOptions { RateLimits = limits }), new UsageLedger(new FakeTimeProvider()));

    private static Tenant TenantWith(string name, int? requestsPerMinute) => new(name, new HashSet<string> { "*" }, requestsPerMinute);

    [Fact]
    public void Unlimited_tenant_still_meets_the_adapter_limit()
    {
        using var limits = Create(new RateLimitOptions { Adapters = { ["sql"] = 2 } });
        var tenant = TenantWith("a", 0);
        Assert.Null(limits.TryAcquire(tenant, "sql"));
        Assert.Null(limits.TryAcquire(tenant, "sql"));
        var refusal = limits.TryAcquire(tenant, "sql");
        Assert.Contains("adapter 'sql': 2 requests per minute", refusal?.Message);
        Assert.True(refusal!.Value.RetryAfter > TimeSpan.Zero);
        // Other adapters and base models are unlimited.
        for (var i = 0; i < 100; i++) Assert.Null(limits.TryAcquire(tenant, "other"));
        Assert.Null(limits.TryAcquire(tenant, null));
    }

    [Fact]
    public void Tenant_limit_applies_to_base_models_and_adapters_alike()
    {
        using var limits = Create(new RateLimitOptions { TenantRequestsPerMinute = 2 });
        var tenant = TenantWith("a", null);
        Assert.Null(limits.TryAcquire(tenant, null));
        Assert.Null(limits.TryAcquire(tenant, "sql"));
        Assert.Contains("tenant 'a': 2 requests per minute", limits.TryAcquire(tenant, "sql")?.Message);
        // Another tenant has its own window; a tenant override of 0 means unlimited.
        Assert.Null(limits.TryAcquire(TenantWith("b", null), null));
        for (var i = 0; i < 100; i++) Assert.Null(limits.TryAcquire(TenantWith("c", 0), "sql"));
    }

    [Fact]
    public void A_tenant_and_an_adapter_of_the_same_name_have_separate_windows()
    {
        using var limits = Create(new RateLimitOptions { TenantRequestsPerMinute = 1, AdapterRequestsPerMinute = 1 });
        Assert.Null(limits.TryAcquire(TenantWith("x", null), "x"));
        Assert.Contains("tenant 'x'", limits.TryAcquire(TenantWith("x", null), "y")?.Message);
        Assert.Contains("adapter 'x'", limits.TryAcquire(TenantWith("z", null), "x")?.Message);
    }
}
