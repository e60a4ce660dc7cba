using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Tenancy;

/// <summary>Outcome of authenticating a request: a tenant, or the 401 message to send.</summary>
internal readonly record struct AuthResult(Tenant? Tenant, string? Error);

/// <summary>Maps <c>Authorization: Bearer &lt;key&gt;</c> to a tenant. The key itself is never logged or kept.</summary>
internal sealed class TenantAuthenticator(ApiKeyDirectory keys, IOptions<GatewayOptions> options)
{
    public AuthResult Authenticate(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        if (string.IsNullOrEmpty(header))
        {
            return options.Value.Tenancy.RequireApiKey
                ? new(null, "You didn't provide an API key. Send it in the Authorization header as 'Authorization: Bearer <key>'.")
                : new(Tenant.Anonymous, null);
        }
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) || header.Length == scheme.Length)
            return options.Value.Tenancy.RequireApiKey ? new(null, "The Authorization header must be 'Bearer <key>'.") : new(Tenant.Anonymous, null);
        var tenant = keys.Current.Find(header.AsSpan(scheme.Length).Trim());
        if (tenant is not null) return new(tenant, null);
        // With keys optional, SDKs that always send some key (the OpenAI SDK does) still get in.
        return options.Value.Tenancy.RequireApiKey ? new(null, "Incorrect API key provided.") : new(Tenant.Anonymous, null);
    }
}
