using System.Text.Json;

namespace HybridServing.Gateway.Forwarding;

/// <summary>Token counts an engine reported in its <c>usage</c> object.</summary>
internal readonly record struct TokenUsage(long PromptTokens, long CompletionTokens)
{
    public long Total => PromptTokens + CompletionTokens;
}

/// <summary>
/// Finds the last <c>"usage":{...}</c> in the tail of a response: the end of a JSON completion, or
/// the final usage chunk of a stream (<c>stream_options.include_usage</c>). Reading only the tail
/// keeps the gateway from buffering or parsing whole responses.
/// </summary>
internal static class UsageReader
{
    private static ReadOnlySpan<byte> UsageKey => "\"usage\""u8;

    public static TokenUsage? TryRead(ReadOnlySpan<byte> tail)
    {
        var at = tail.LastIndexOf(UsageKey);
        while (at >= 0)
        {
            var rest = tail[(at + UsageKey.Length)..];
            var brace = rest.IndexOf((byte)'{');
            if (brace >= 0 && rest[..brace].Trim(" \t\r\n:"u8).IsEmpty && TryParseObject(rest[brace..], out var usage))
                return usage;
            at = tail[..at].LastIndexOf(UsageKey);
        }
        return null;
    }

    private static bool TryParseObject(ReadOnlySpan<byte> json, out TokenUsage usage)
    {
        usage = default;
        long prompt = 0, completion = 0;
        var found = false;
        try
        {
            var reader = new Utf8JsonReader(json, isFinalBlock: false, state: default);
            if (!reader.Read() || reader.TokenType != JsonTokenType.StartObject) return false;
            while (reader.Read() && reader.TokenType == JsonTokenType.PropertyName)
            {
                var isPrompt = reader.ValueTextEquals("prompt_tokens"u8);
                var isCompletion = reader.ValueTextEquals("completion_tokens"u8);
                if (!reader.Read()) return false;
                if (reader.TokenType == JsonTokenType.Number && (isPrompt || isCompletion) && reader.TryGetInt64(out var n) && n >= 0)
                {
                    if (isPrompt) prompt = n;
                    else completion = n;
                    found = true;
                }
                else if (!reader.TrySkip()) return false;
            }
            if (reader.TokenType != JsonTokenType.EndObject) return false;
        }
        catch (JsonException)
        {
            return false;
        }
        usage = new TokenUsage(prompt, completion);
        return found;
    }
}
