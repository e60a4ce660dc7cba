using HybridServing.Gateway.OpenAi;
using Microsoft.Extensions.Options;

namespace HybridServing.Gateway.Tenancy;

/// <summary>
/// <c>GET /admin/usage</c>: requests and tokens per tenant on this replica. Guarded by its own
/// key (<c>Gateway:Tenancy:AdminApiKey[Sha256]</c>); tenant keys never open it.
/// </summary>
internal sealed class AdminUsageEndpoint(UsageLedger usage, IOptions<GatewayOptions> options)
{
    private readonly byte[]? _adminKey = ApiKeyStore.AdminKeyHash(options.Value.Tenancy);

    public async Task GetAsync(HttpContext context)
    {
        if (_adminKey is null)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status404NotFound, OpenAiErrors.NotFound,
                "The admin view is disabled; set Gateway:Tenancy:AdminApiKey or AdminApiKeySha256 to enable it.");
            return;
        }
        var header = context.Request.Headers.Authorization.ToString();
        const string scheme = "Bearer ";
        if (!header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase))
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, OpenAiErrors.Authentication,
                "The admin view needs 'Authorization: Bearer <admin key>'.");
            return;
        }
        if (!ApiKeyStore.Matches(_adminKey, header[scheme.Length..].Trim()))
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status403Forbidden, OpenAiErrors.PermissionDenied,
                "This key may not read the admin view.");
            return;
        }
        await context.Response.WriteAsJsonAsync(new { @object = "usage", tenants = usage.Snapshot() }, OpenAiErrors.JsonOptions, context.RequestAborted);
    }
}
