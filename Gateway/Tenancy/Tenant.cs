using HybridServing.Gateway.Routing;

namespace HybridServing.Gateway.Tenancy;

/// <summary>A tenant: who is calling, which LoraAdapter namespaces they may use, and their rate limit override.</summary>
internal sealed record Tenant(string Name, IReadOnlySet<string> Namespaces, int? RequestsPerMinute, long? TokensPerMinute = null)
{
    public const string AllNamespaces = "*";

    /// <summary>Used when <c>Gateway:Tenancy:RequireApiKey</c> is false and no key was sent.</summary>
    public static readonly Tenant Anonymous = new("anonymous", new HashSet<string> { AllNamespaces }, null);

    /// <summary>Base models are shared by everyone; adapters belong to namespaces.</summary>
    public bool MayUse(AdapterRouteInfo adapter) => Namespaces.Contains(AllNamespaces) || Namespaces.Contains(adapter.Namespace);
}
