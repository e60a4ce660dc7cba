using System.Collections.Concurrent;
using System.Runtime.CompilerServices;

namespace HybridServing.Gateway.Tenancy;

/// <summary>One tenant's usage since the gateway started, as the admin view shows it.</summary>
internal sealed record TenantUsageView(
    string Tenant, long Requests, long Succeeded, long ClientErrors, long ServerErrors, long RateLimited,
    long PromptTokens, long CompletionTokens, long TokensThisMinute, IReadOnlyDictionary<string, long> RequestsByModel);

/// <summary>
/// Per-tenant request and token accounting (this gateway replica's share) and the token-per-minute
/// windows the TPM limit reads. Tokens are known only after a response, so a TPM limit admits a
/// request while the window still has budget and charges the tokens when the usage arrives.
/// </summary>
internal sealed class UsageLedger(TimeProvider time)
{
    private static readonly TimeSpan Window = TimeSpan.FromMinutes(1);

    private sealed class Entry
    {
        public long Requests, Succeeded, ClientErrors, ServerErrors, RateLimited, PromptTokens, CompletionTokens;
        // Counted with Interlocked on a per-model box: AddOrUpdate would take a bucket lock per request.
        public readonly ConcurrentDictionary<string, StrongBox<long>> ByModel = new(StringComparer.Ordinal);
        public readonly Lock WindowGate = new();
        public DateTimeOffset WindowStart;
        public long WindowTokens;
    }

    private readonly ConcurrentDictionary<string, Entry> _tenants = new(StringComparer.Ordinal);

    private Entry For(string tenant) => _tenants.GetOrAdd(tenant, static _ => new Entry());

    public void RecordRequest(string tenant, string model, int status)
    {
        var e = For(tenant);
        Interlocked.Increment(ref e.Requests);
        if (status is >= 200 and < 300) Interlocked.Increment(ref e.Succeeded);
        else if (status == 429) Interlocked.Increment(ref e.RateLimited);
        else if (status is >= 400 and < 500) Interlocked.Increment(ref e.ClientErrors);
        else if (status >= 500) Interlocked.Increment(ref e.ServerErrors);
        Interlocked.Increment(ref e.ByModel.GetOrAdd(model, static _ => new StrongBox<long>()).Value);
    }

    public void RecordTokens(string tenant, long prompt, long completion)
    {
        var e = For(tenant);
        Interlocked.Add(ref e.PromptTokens, prompt);
        Interlocked.Add(ref e.CompletionTokens, completion);
        lock (e.WindowGate)
        {
            Roll(e);
            e.WindowTokens += prompt + completion;
        }
    }

    /// <summary>Tokens charged to the tenant in the current one-minute window, and when it ends.</summary>
    public (long Tokens, TimeSpan ResetsIn) TokensThisMinute(string tenant)
    {
        var e = For(tenant);
        lock (e.WindowGate)
        {
            Roll(e);
            return (e.WindowTokens, e.WindowStart + Window - time.GetUtcNow());
        }
    }

    private void Roll(Entry e)
    {
        var now = time.GetUtcNow();
        if (now - e.WindowStart < Window) return;
        e.WindowStart = now;
        e.WindowTokens = 0;
    }

    public IReadOnlyList<TenantUsageView> Snapshot() =>
        [.. _tenants.OrderBy(t => t.Key, StringComparer.Ordinal).Select(t => new TenantUsageView(
            t.Key, Interlocked.Read(ref t.Value.Requests), Interlocked.Read(ref t.Value.Succeeded), Interlocked.Read(ref t.Value.ClientErrors),
            Interlocked.Read(ref t.Value.ServerErrors), Interlocked.Read(ref t.Value.RateLimited), Interlocked.Read(ref t.Value.PromptTokens),
            Interlocked.Read(ref t.Value.CompletionTokens), TokensThisMinute(t.Key).Tokens,
            t.Value.ByModel.ToDictionary(m => m.Key, m => Interlocked.Read(ref m.Value.Value), StringComparer.Ordinal)))];
}
