// Groups every K beats of a window stream into one output beat: the counter and the
// AXI-Stream handshake of the window-reduction layers (max pool, sum pool).
//
// FINN's depthwise sliding-window generator emits the K positions of a window one beat
// each; the layer folds them into a register and presents the result when the last one
// arrives. ``fire`` says a beat enters this cycle, ``first`` and ``last`` where it sits
// in its window. A beat may enter unless the output register holds a result nobody takes.
module window_group #(
    parameter int K = 4
) (
    input  logic clk,
    input  logic rst_n,
    input  logic in_tvalid,
    output logic in_tready,
    output logic out_tvalid,
    input  logic out_tready,
    output logic fire,
    output logic first,
    output logic last
);
    localparam int KW = $clog2(K > 1 ? K : 2);

    logic [KW-1:0] k;

    assign in_tready = !out_tvalid || out_tready;
    assign fire      = in_tvalid && in_tready;
    assign first     = k == '0;
    assign last      = k == KW'(K - 1);

    always_ff @(posedge clk) begin
        if (!rst_n) begin
            k <= '0;
            out_tvalid <= 1'b0;
        end else begin
            if (out_tready) out_tvalid <= 1'b0;
            if (fire) begin
                if (last) begin
                    k <= '0;
                    out_tvalid <= 1'b1;
                end else begin
                    k <= k + 1'b1;
                end
            end
        end
    end
endmodule
