using System.Threading.RateLimiting;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Limits;

/// <summary>Which limit refused a request, and when to come back.</summary>
internal readonly record struct RateLimitRefusal(string Message, TimeSpan RetryAfter);

/// <summary>
/// Requests-per-minute limits per tenant and per adapter (System.Threading.RateLimiting fixed
/// one-minute windows, no queueing: a refused request gets 429 + Retry-After at once instead of
/// holding a connection), and a tokens-per-minute budget per tenant charged from engines' usage.
/// </summary>
internal sealed class RequestRateLimits : IDisposable
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);
    // Partitioned by (kind, name): a tuple key, so no string is built per request.
    private readonly PartitionedRateLimiter<(string Kind, string Name, int Limit)> _limiter;
    private readonly RateLimitOptions _options;

    private readonly Tenancy.UsageLedger _usage;

    public RequestRateLimits(IOptions<GatewayOptions> options, Tenancy.UsageLedger usage)
    {
        _usage = usage;
        _options = options.Value.RateLimits;
        if (_options.TenantTokensPerMinute < 0 || _options.TenantRequestsPerMinute < 0 || _options.AdapterRequestsPerMinute < 0 || _options.Adapters.Values.Any(v => v < 0))
            throw new InvalidOperationException("Gateway:RateLimits values must be >= 0 (0 = unlimited).");
        _limiter = PartitionedRateLimiter.Create<(string Kind, string Name, int Limit), (string, string)>(r =>
            RateLimitPartition.GetFixedWindowLimiter((r.Kind, r.Name), _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = r.Limit,
                Window = Window,
                QueueLimit = 0,
                AutoReplenishment = true,
            }));
    }

    /// <summary>
    /// Checks the tenant's token budget, then takes one permit from the tenant's request limit and
    /// one from the adapter's; null when all allow the request.
    /// </summary>
    public RateLimitRefusal? TryAcquire(Tenancy.Tenant tenant, string? adapter)
    {
        var tokenLimit = tenant.TokensPerMinute ?? _options.TenantTokensPerMinute;
        if (tokenLimit > 0)
        {
            var (used, resetsIn) = _usage.TokensThisMinute(tenant.Name);
            if (used >= tokenLimit)
                return new($"Token rate limit reached for tenant '{tenant.Name}': {used} of {tokenLimit} tokens used this minute.",
                    resetsIn > TimeSpan.Zero ? resetsIn : TimeSpan.FromSeconds(1));
        }
        // 0 = unlimited: such a request never touches the limiter (its partitions share one lock).
        var tenantLimit = tenant.RequestsPerMinute ?? _options.TenantRequestsPerMinute;
        if (tenantLimit > 0)
        {
            using var lease = _limiter.AttemptAcquire(("tenant", tenant.Name, tenantLimit));
            if (!lease.IsAcquired)
                return new($"Rate limit reached for tenant '{tenant.Name}': {tenantLimit} requests per minute.", RetryAfter(lease));
        }
        if (adapter is null) return null;
        var adapterLimit = _options.Adapters.TryGetValue(adapter, out var specific) ? specific : _options.AdapterRequestsPerMinute;
        if (adapterLimit > 0)
        {
            using var lease = _limiter.AttemptAcquire(("adapter", adapter, adapterLimit));
            if (!lease.IsAcquired)
                return new($"Rate limit reached for adapter '{adapter}': {adapterLimit} requests per minute.", RetryAfter(lease));
        }
        return null;
    }

    private static TimeSpan RetryAfter(RateLimitLease lease) =>
        lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) && wait > TimeSpan.Zero ? wait : Window;

    public void Dispose() => _limiter.Dispose();
}
