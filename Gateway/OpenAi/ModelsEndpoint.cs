using HybridServing.Contracts.ControlPlane;
using HybridServing.Contracts.OpenAi;
using HybridServing.Gateway.Routing;
using HybridServing.Gateway.Tenancy;

namespace HybridServing.Gateway.OpenAi;

/// <summary>
/// <c>GET /v1/models</c>: every base model, plus the adapters the caller's tenant may use that are
/// LOADED on at least one engine (cards shaped as vLLM's, <c>parent</c> = the base model).
/// </summary>
internal sealed class ModelsEndpoint(TenantAuthenticator authenticator, RoutingDatastore routes, ModelAliases aliases)
{
    public async Task ListAsync(HttpContext context)
    {
        var auth = authenticator.Authenticate(context.Request);
        if (auth.Tenant is not { } tenant)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, OpenAiErrors.Authentication, auth.Error!);
            return;
        }
        var snapshot = routes.Current;
        await context.Response.WriteAsJsonAsync(new ModelList { Data = [.. Cards(snapshot, tenant, aliases)] }, OpenAiErrors.JsonOptions, context.RequestAborted);
    }

    public async Task GetAsync(HttpContext context, string model)
    {
        var auth = authenticator.Authenticate(context.Request);
        if (auth.Tenant is not { } tenant)
        {
            await OpenAiErrors.WriteAsync(context, StatusCodes.Status401Unauthorized, OpenAiErrors.Authentication, auth.Error!);
            return;
        }
        var card = Cards(routes.Current, tenant, aliases).FirstOrDefault(c => c.Id == model);
        if (card is null) await OpenAiErrors.ModelNotFoundAsync(context, model);
        else await context.Response.WriteAsJsonAsync(card, OpenAiErrors.JsonOptions, context.RequestAborted);
    }

    internal static IEnumerable<ModelCard> Cards(RoutingSnapshot snapshot, Tenant tenant, ModelAliases aliases)
    {
        var created = snapshot.ReceivedAt.ToUnixTimeSeconds();
        var cards = new List<ModelCard>();
        foreach (var b in snapshot.BaseModels.Order(StringComparer.Ordinal))
            cards.Add(new ModelCard { Id = b, Created = created, Root = b, Parent = null });
        foreach (var a in snapshot.Adapters.Values.OrderBy(a => a.Name, StringComparer.Ordinal))
        {
            if (Listed(snapshot, tenant, a))
                cards.Add(new ModelCard { Id = a.Name, Created = created, Root = a.Name, Parent = a.BaseModel });
        }
        // An alias is listed when every version behind it is one the tenant could call by name.
        foreach (var alias in aliases.Names.Order(StringComparer.Ordinal))
        {
            var targets = aliases.TargetsOf(alias).Select(snapshot.Resolve).ToList();
            if (targets.Any(t => t is null || (t.Adapter is { } ad && !Listed(snapshot, tenant, ad)))) continue;
            cards.Add(new ModelCard { Id = alias, Created = created, Root = aliases.TargetsOf(alias)[0], Parent = targets[0]!.BaseModel });
        }
        return cards;
    }

    private static bool Listed(RoutingSnapshot snapshot, Tenant tenant, AdapterRouteInfo a) =>
        tenant.MayUse(a) && snapshot.BaseModels.Contains(a.BaseModel)
        && a.Endpoints.Any(e => e.Value == Residency.Loaded && snapshot.Engines.ContainsKey(e.Key));
}
